#!/usr/bin/env bash
# What the test suite needs beyond Python: kubectl (it comes with the machine image;
# check it) and the node agent's Debian packages (scripts/agent-deps.sh).
set -euo pipefail
if ! command -v kubectl >/dev/null 2>&1; then
  echo "kubectl is required for the integration tests and is not installed" >&2
  exit 1
fi
bash "$(dirname "$0")/agent-deps.sh"
# etcd for the etcd storage backend's tests (a real etcd, started by the tests)
if ! command -v etcd >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq etcd-server >/dev/null
fi
# Debian's Chromium for the dashboard's browser tests (Playwright drives it through
# executable_path: no browser download). Without root the tests skip with a reason.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi
