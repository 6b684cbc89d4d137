#!/bin/sh
exec "$(dirname "$0")/suite.sh" fork -o mode=exec
