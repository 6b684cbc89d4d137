#!/bin/sh
# make stress, first part: the subint starvation case (tests/unit/test_subint,
# CK_RUN_CASE=starvation) STARVATION_ROUNDS times in a row (default 50) while
# two CPU hogs load both cores. Each round spawns an actor, sends it a message
# and calls it beside two spinning Python actors; any round past its bound
# (spawn timeout 2 s, call and recv deadlines) fails it.
set -u
top=${abs_top_builddir:-$(pwd)}
prog="$top/tests/unit/test_subint"
if [ ! -x "$prog" ]; then
    echo "starvation: $prog not built (subint disabled?): skipped"
    exit 0
fi
hogs=""
for i in 1 2; do
    # bounded: killed below, and never older than 15 minutes
    timeout 900 sh -c 'while :; do :; done' &
    hogs="$hogs $!"
done
trap 'kill $hogs 2>/dev/null' EXIT INT TERM
echo "starvation: ${STARVATION_ROUNDS:-50} rounds beside two spinning actors and two CPU hogs"
TETHER_STARVATION_ROUNDS=${STARVATION_ROUNDS:-50} CK_RUN_CASE=starvation timeout 1200 "$prog"
