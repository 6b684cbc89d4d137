#!/bin/sh
exec "$(dirname "$0")/suite.sh" thread
