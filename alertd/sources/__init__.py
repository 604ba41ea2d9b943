"""One module per upstream kind: a pure ``parse`` and the fetch parameters it needs."""
