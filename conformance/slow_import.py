"""cancel.during-spawn: takes 10 s to import (C: ctor_slow.so), in short
sleeps, as slow start-up work does."""
import time

import tether

_end = time.monotonic() + 10
while time.monotonic() < _end:
    time.sleep(0.05)


def actor(actor):
    while True:
        tether.sleep(3600)
