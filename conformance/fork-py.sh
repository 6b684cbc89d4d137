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
exec "$(dirname "$0")/suite.sh" fork --language python "$@"
