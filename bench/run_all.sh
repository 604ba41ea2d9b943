#!/usr/bin/env bash
# Run every benchmark in turn and print their tables (about 25-35 minutes on 2 cores).
# Usage: bench/run_all.sh [python]   (default: python3 on PATH; use the venv alertd is installed in)
set -euo pipefail
PY="${1:-python3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
"$PY" "$HERE/startup.py"
"$PY" "$HERE/fanout.py"
"$PY" "$HERE/idle.py"
"$PY" "$HERE/latency.py" --interval 1 10
