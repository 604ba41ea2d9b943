#!/usr/bin/env bash
# Run every benchmark in turn and print their tables (about an hour on 2 cores, most of it the
# N=10,000 latency flips).
# Usage: bench/run_all.sh [python]   (default: python3 on PATH; use the venv alertd is installed in)
set -euo pipefail
PY="${1:-python3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
"$PY" "$HERE/startup.py"
"$PY" "$HERE/fanout.py"
"$PY" "$HERE/idle.py"
"$PY" "$HERE/push_latency.py"
"$PY" "$HERE/latency.py" --interval 1 10
"$PY" "$HERE/shared_dispatch.py"
"$PY" "$HERE/city.py"
"$PY" "$HERE/soak.py" --minutes 10
