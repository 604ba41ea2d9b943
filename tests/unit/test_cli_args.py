"""Command-line parsing: options where a user would type them."""

from alertd.cli import build_parser


def test_config_before_or_after_a_subscribers_action():
    parser = build_parser()
    assert parser.parse_args(["subscribers", "--config", "a.toml", "list"]).config == "a.toml"
    assert parser.parse_args(["subscribers", "list", "--config", "b.toml"]).config == "b.toml"
    assert parser.parse_args(["subscribers", "remove", "olena", "-c", "c.toml"]).config == "c.toml"
    assert parser.parse_args(["subscribers", "show", "olena"]).config is None


def test_every_command_parses_its_documented_form():
    parser = build_parser()
    assert parser.parse_args(["run", "--once", "--config", "x.toml"]).once
    assert parser.parse_args(["parse", "--source", "cap", "-"]).files == ["-"]
    args = parser.parse_args(["test-notify", "--url", "json://127.0.0.1/x", "--url", "json://127.0.0.1/y"])
    assert args.url == ["json://127.0.0.1/x", "json://127.0.0.1/y"]
    assert parser.parse_args(["demo", "--duration", "12"]).duration == 12
