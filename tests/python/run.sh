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
exec "$PYTHON" -X faulthandler "$abs_top_srcdir/tests/python/test_tether.py" -v
