#!/bin/sh
# make check: the fault-injection walk (tests/unit/test_faults.c) with the
# fault shim preloaded into the test process only.
top=${abs_top_builddir:-$(pwd)}
shim="$top/tests/fault/.libs/libfault.so"
[ -f "$shim" ] || { echo "fault shim not built: $shim"; exit 77; }
# A sanitizer runtime must come first and owns malloc: the shim cannot be
# preloaded beside it (the normal build runs the walk).
if ldd "$top/tests/unit/.libs/test_faults" 2>/dev/null | grep -qE 'lib(asan|tsan)'; then
    echo "fault walk skipped in a sanitizer build (the shim interposes malloc)"
    exit 77
fi
exec env LD_PRELOAD="$shim" "$top/tests/unit/test_faults"
