#!/usr/bin/env bash
# pymesos 0.3.15 (the Mesos framework library the integration tests drive Corral with)
# depends on http-parser 0.9.0, whose C extension does not build on CPython >= 3.11
# (douban/pymesos#130, benoitc/http-parser#94). Install http-parser from its sdist with
# the extension switched off (its pure-Python parser is what pymesos then uses), then
# pymesos itself. Usage: pymesos-deps.sh PYTHON (the venv's interpreter).
set -euo pipefail
PY="${1:-python3}"
if "$PY" -c 'import pymesos, http_parser.pyparser' >/dev/null 2>&1; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download -q --no-deps --no-binary :all: -d "$work" 'http-parser==0.9.0'
tar -xzf "$work"/http-parser-0.9.0.tar.gz -C "$work"
sed -i 's/run_setup(not IS_PYPY)/run_setup(False)/' "$work"/http-parser-0.9.0/setup.py
grep -q 'run_setup(False)' "$work"/http-parser-0.9.0/setup.py
"$PY" -m pip install -q "$work"/http-parser-0.9.0
"$PY" -m pip install -q 'pymesos==0.3.15'
"$PY" -c 'import pymesos, http_parser.pyparser'
