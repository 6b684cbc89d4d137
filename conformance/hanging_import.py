"""orphan.spawn-hangs: never finishes importing (C: ctor_hangs.so)."""
import time

import tether

while True:
    time.sleep(0.05)


def actor(actor):
    while True:
        tether.sleep(3600)
