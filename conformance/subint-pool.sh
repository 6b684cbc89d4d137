#!/bin/sh
# make check: the conformance suite on the subint backend with a warm pool
# (options pool: 2): every guarantee holds for actors in interpreters made ahead.
exec "$(dirname "$0")/suite.sh" subint -o pool=2 "$@"
