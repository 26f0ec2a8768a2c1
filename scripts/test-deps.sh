#!/usr/bin/env bash
# Debian packages the test suite needs. kubectl comes with the machine image; check it.
set -euo pipefail
if ! command -v kubectl >/dev/null 2>&1; then
  echo "kubectl is required for the integration tests and is not installed" >&2
  exit 1
fi
