#!/bin/sh
# make check: the conformance suite on the thread backend with a warm pool
# (options pool: 4): every guarantee holds for pooled actors too.
exec "$(dirname "$0")/suite.sh" thread -o pool=4 "$@"
