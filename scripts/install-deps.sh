#!/bin/sh
# Install the Debian 12 packages tether needs to build and test.
# Run as root (or through sudo). Idempotent.
set -eu
# man-db: make installcheck reads every installed man page with man -l
PKGS="build-essential autoconf automake libtool pkg-config autoconf-archive
      libffi-dev libyaml-dev libmsgpack-dev check python3-dev man-db"
# python3-trio: the tether Python package's trio example (tests/python)
PKGS="$PKGS python3-trio"
# the CI lanes: CPython 3.13 from its Debian source package
# (scripts/build-python313.sh), a Debian forky root (scripts/forky-lane.sh)
PKGS="$PKGS dpkg-dev libssl-dev zlib1g-dev debootstrap"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (apt-get needs it)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
echo "install-deps.sh: installed: $(echo $PKGS)"
