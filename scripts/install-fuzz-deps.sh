#!/bin/sh
# Install what `make fuzz` needs on Debian 12 besides scripts/install-deps.sh:
# clang and its runtime (libFuzzer, ASan, UBSan). CI does not fuzz, so this
# is separate. Run as root. Idempotent.
set -eu
PKGS="clang libclang-rt-14-dev"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-fuzz-deps.sh: run as root (apt-get needs it)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
echo "install-fuzz-deps.sh: installed: $PKGS"
