#!/usr/bin/env bash
# Debian packages the node agent uses (runc, conmon, the CNI plugins, skopeo, umoci,
# busybox-static) and the tests' local registry (docker-registry). As root, install what
# is missing; otherwise say what will fall back (process runtime) or be skipped.
set -euo pipefail
PACKAGES=(runc conmon containernetworking-plugins busybox-static skopeo umoci docker-registry iproute2)
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
    echo "not root, so not installing ${missing[*]}: the agent runs pods as processes and the tests needing them skip" >&2
  fi
fi
