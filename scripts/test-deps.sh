#!/usr/bin/env bash
# Debian packages the test suite needs: kubectl comes with the machine image; the node
# agent's e2e tests need runc, the CNI plugins, busybox-static (test images), and skopeo,
# umoci and docker-registry (a local registry and the image store). As root, install what
# is missing; otherwise say what the root-only tests will skip.
set -euo pipefail
if ! command -v kubectl >/dev/null 2>&1; then
  echo "kubectl is required for the integration tests and is not installed" >&2
  exit 1
fi
PACKAGES=(runc containernetworking-plugins busybox-static skopeo umoci docker-registry iproute2)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
  else
    echo "not root: tests needing ${missing[*]} will be skipped" >&2
  fi
fi
