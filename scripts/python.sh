#!/usr/bin/env bash
# Prints the Python interpreter `make` builds .venv from.
#
# Debian's python3.11 is built with profile-guided and link-time optimisation and a static
# libpython; pyenv's default build (what `python3` is on these machines) has neither, and
# Corral's processes spend ~5% more CPU on it (README, Performance). So: Debian's
# python3.11 when it is there and has its venv module (as root, Debian's python3.11-venv
# is installed when it is missing), else `python3`.
set -euo pipefail
system=/usr/bin/python3.11
has_venv() { "$system" -c 'import ensurepip, venv' >/dev/null 2>&1; }
if [ -x "$system" ]; then
  if ! has_venv && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq python3.11-venv >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq python3.11-venv >/dev/null 2>&1; } \
      || true
  fi
  if has_venv; then
    echo "$system"
    exit 0
  fi
fi
echo python3
