#!/bin/sh
# tests/python/run.sh - the tether Python package's tests against the build
# tree (make check). PYTHON is the interpreter configure chose.
set -eu
: "${abs_top_builddir:?run through make check}"
: "${abs_top_srcdir:=$abs_top_builddir}"
PYTHON=${PYTHON:-python3}
PYTHONPATH="$abs_top_builddir/python/.libs${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH abs_top_builddir abs_top_srcdir
cd "$abs_top_builddir"
# Sanitizer builds: the interpreter is not instrumented, so the runtime the
# extension links must be loaded first (LD_PRELOAD; children inherit it).
# LeakSanitizer stays off here: /usr/bin/python3 links libpython statically
# and never frees everything at exit, so no suppression could tell its
# allocations from ours (leaks are measured by the RSS test and
# bench/python_rss.py on the normal build).
ext="$abs_top_builddir/python/.libs/tether.so"
san=$(ldd "$ext" 2>/dev/null | awk '/lib(asan|tsan)\.so/ { print $3; exit }')
case "$san" in
*tsan*) echo "tests/python: skipped under ThreadSanitizer (uninstrumented interpreter)"; exit 77 ;;
*asan*)
    LD_PRELOAD="$san${LD_PRELOAD:+:$LD_PRELOAD}"
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    TETHER_SANITIZER=asan
    export LD_PRELOAD ASAN_OPTIONS TETHER_SANITIZER ;;
esac
exec "$PYTHON" -X faulthandler "$abs_top_srcdir/tests/python/test_tether.py" -v
