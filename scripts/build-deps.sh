#!/usr/bin/env bash
# What scripts/compile.py needs to compile Corral's hot modules with mypyc: a C compiler
# and the headers of the Python that .venv runs (Debian's gcc and python3-dev). Installed
# as root when missing; without root the build is skipped and Corral runs interpreted.
set -euo pipefail
py="${1:-.venv/bin/python}"
include="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
if command -v gcc >/dev/null 2>&1 && [ -f "$include/Python.h" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "no C compiler or Python headers, and no root to install them: Corral runs interpreted" >&2
  exit 0
fi
dev="$("$py" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}-dev")')"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq gcc "$dev" >/dev/null \
  || { apt-get update -qq && apt-get install -y -qq gcc "$dev" >/dev/null; }
