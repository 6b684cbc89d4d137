#!/bin/sh
# make check: the conformance suite's Python scenario actors (actors.py, the
# subint backend's) on the fork backend, each in a process of its own
# (tether-pyactor, the fork backend's python_helper).
top=${abs_top_builddir:-$(pwd)}
[ -x "$top/backends/subint/tether-pyactor" ] ||
    { echo "skipped: built without the subint backend (no tether-pyactor)"; exit 77; }
TETHER_CONFORMANCE_DIR="${abs_top_srcdir:-$top}/conformance"
# the nested scenarios' actors import the build tree's tether extension
PYTHONPATH="$top/python/.libs${PYTHONPATH:+:$PYTHONPATH}"
export TETHER_CONFORMANCE_DIR PYTHONPATH
# The helper as installed: libtool's real binary, not its build-tree wrapper
# (a bash script that costs each spawn ~5x what the helper costs: 0.33 s
# against 0.067 s at load 6; 200 spawns of cancel.race-with-exit then
# outlast the watchdog). Only the library path differs from an install.
real="$top/backends/subint/.libs/tether-pyactor"
if [ -x "$real" ]; then
    LD_LIBRARY_PATH="$top/core/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
    exec "$(dirname "$0")/suite.sh" fork --language python -o python_helper="$real" "$@"
fi
exec "$(dirname "$0")/suite.sh" fork --language python "$@"
