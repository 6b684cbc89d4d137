#!/bin/sh
# make check: the fault-injection walk (tests/unit/test_faults.c) with the
# fault shim preloaded into the test process only.
top=${abs_top_builddir:-$(pwd)}
shim="$top/tests/fault/.libs/libfault.so"
[ -f "$shim" ] || { echo "fault shim not built: $shim"; exit 77; }
exec env LD_PRELOAD="$shim" "$top/tests/unit/test_faults"
