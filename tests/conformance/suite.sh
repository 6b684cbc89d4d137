#!/bin/sh
# make check: the conformance suite against one in-tree backend (named by the
# first argument; more arguments go to `tether conformance`). A backend whose plugin
# is still a placeholder is reported as skipped (exit 77), never as passed.
set -u
backend=${1:-$(basename "$0" .sh)}
[ $# -gt 0 ] && shift
top=${abs_top_builddir:-$(pwd)}
cfg="$top/plugins.yaml"
# Python scenario actors are sources: in a build outside the source tree
# (make distcheck) they are found there, not beside the built modules.
case $backend in
    subint) export TETHER_CONFORMANCE_DIR="${abs_top_srcdir:-$top}/tests/conformance" ;;
esac
out=$(timeout 600 "$top/cli/tether" conformance -c "$cfg" -b "$backend" "$@" 2>&1)
status=$?
printf '%s\n' "$out"
last=$(printf '%s\n' "$out" | tail -n 1)
case "$last" in
    "0 passed, 0 failed, "*) exit 77 ;;
esac
exit $status
