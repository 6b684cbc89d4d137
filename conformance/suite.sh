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
# Sanitizer builds (Makefile.am sets TETHER_SANITIZER): every process the
# suite starts (actors, exec helpers, supervising programs) writes its
# sanitizer reports to files here, so a report from a child whose output the
# suite swallows still decides the verdict.
san=${TETHER_SANITIZER:-}
if [ -n "$san" ]; then
    sanlog=$(mktemp -d)
    trap 'rm -rf "$sanlog"' EXIT
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$sanlog/asan"
    UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$sanlog/ubsan"
    TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}log_path=$sanlog/tsan"
    export ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
fi
out=$(timeout 600 "$top/cli/tether" conformance -c "$cfg" -b "$backend" "$@" 2>&1)
status=$?
printf '%s\n' "$out"
if [ -n "$san" ]; then
    # The verdict of a sanitizer build is its reports only. The bounds have
    # ~100 ms of slack, and the sanitizers cost more than that: TSan slows
    # the code 5-15x; on this kind of machine (a PVM guest) the exec of an
    # ASan binary takes ~40 ms and LeakSanitizer's exit scan ~50 ms more
    # (plain: ~4 ms), so every exec helper, nested actor and supervising
    # program of a scenario pays it. TSan also does not support a forked
    # child that starts threads (its own "dup thread with used id").
    # The bounds and outcomes are checked by the normal build's run of this
    # same suite. See tests/sanitizers/README.
    reports=$(grep -lE 'WARNING: ThreadSanitizer|ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
        "$sanlog"/* 2>/dev/null)
    if [ -n "$reports" ]; then
        for f in $reports; do echo "==== $f"; cat "$f"; done
        echo "FAIL: $san: sanitizer reports above"
        exit 1
    fi
    if printf '%s\n' "$out" | grep -qE 'WARNING: ThreadSanitizer|ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:'; then
        echo "FAIL: $san: sanitizer reports above"
        exit 1
    fi
    [ "$status" -eq 0 ] || echo "# $san: scenario failures above are not sanitizer reports (see tests/sanitizers/README)"
    [ "$status" -le 1 ] || { echo "FAIL: the suite itself ended with status $status"; exit 1; }
    case $(printf '%s\n' "$out" | tail -n 1) in "0 passed, 0 failed, "*) exit 77 ;; esac
    exit 0
fi
last=$(printf '%s\n' "$out" | tail -n 1)
case "$last" in
    "0 passed, 0 failed, "*) exit 77 ;;
esac
exit $status
