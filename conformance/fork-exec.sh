#!/bin/sh
# make check: the conformance suite on the fork backend in exec mode (each
# actor exec's the helper, tether-actor).
top=${abs_top_builddir:-$(pwd)}
# The helper as installed: libtool's real binary, not its build-tree wrapper
# (a bash script that costs each spawn ~5x what the helper costs: 0.33 s
# against 0.067 s at load 6; 200 spawns of cancel.race-with-exit then
# outlast the watchdog). Only the library path differs from an install.
real="$top/cli/.libs/tether-actor"
if [ -x "$real" ]; then
    LD_LIBRARY_PATH="$top/core/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
    exec "$(dirname "$0")/suite.sh" fork -o mode=exec -o helper="$real" "$@"
fi
exec "$(dirname "$0")/suite.sh" fork -o mode=exec "$@"
