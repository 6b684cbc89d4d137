#!/bin/sh
# make check: the conformance suite against one in-tree backend (named by the
# first argument; more arguments go to `tether conformance`). A backend whose plugin
# is still a placeholder is reported as skipped (exit 77), never as passed.
set -u
backend=${1:-$(basename "$0" .sh)}
[ $# -gt 0 ] && shift
top=${abs_top_builddir:-$(pwd)}
# the build tree's plugins.yaml (a VPATH build has its own copy, whose
# relative paths name its own backends), else the source tree's
cfg="$top/plugins.yaml"
[ -f "$cfg" ] || cfg="${abs_top_srcdir:-$top}/plugins.yaml"
# Python scenario actors are sources: in a build outside the source tree
# (make distcheck) they are found there, not beside the built modules.
case $backend in
    subint)
        export TETHER_CONFORMANCE_DIR="${abs_top_srcdir:-$top}/conformance"
        # nested scenarios: actors import the build tree's tether extension
        PYTHONPATH="$top/python/.libs${PYTHONPATH:+:$PYTHONPATH}"
        export PYTHONPATH ;;
esac
out=$(timeout 600 "$top/cli/tether" conformance -c "$cfg" -b "$backend" "$@" 2>&1)
status=$?
printf '%s\n' "$out"
if [ "${TETHER_SANITIZER:-}" = tsan ]; then
    # ThreadSanitizer build: the verdict is races only. TSan slows the code
    # 5-15x, which the ~100 ms slack of the bounds cannot absorb, and it
    # does not support a forked child that starts threads (orphan.abandoned-
    # exit, orphan.parent-dies, the fork backend's nested scenarios): those
    # are checked by the normal and the ASan builds. See tests/sanitizers/README.
    # (TSan's own "dup thread with used id" from forked children that start
    # threads is that unsupported case, not a report)
    if printf '%s\n' "$out" | grep -q 'WARNING: ThreadSanitizer'; then
        echo "FAIL: ThreadSanitizer reports above"
        exit 1
    fi
    [ "$status" -eq 0 ] || echo "# tsan: scenario failures above are not races (see tests/sanitizers/README)"
    case $(printf '%s\n' "$out" | tail -n 1) in "0 passed, 0 failed, "*) exit 77 ;; esac
    exit 0
fi
last=$(printf '%s\n' "$out" | tail -n 1)
case "$last" in
    "0 passed, 0 failed, "*) exit 77 ;;
esac
exit $status
