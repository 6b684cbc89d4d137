"""bench/python_rss.py - RSS of a Python program over many spawn/cancel cycles.

    PYTHONPATH=python/.libs python3 bench/python_rss.py [CYCLES] [BACKEND]

Spawns an actor, sends it a message, cancels it and waits for its outcome,
CYCLES times (default 10,000), and prints the resident set size every
tenth of the run. A leaked handle, Actor object or message would make the
column grow; a flat column is the pass mark (the first tenth warms the
allocator up). Exits 1 if RSS grew by more than 2 MiB after the first tenth.
"""
import gc
import os
import sys
import time

import tether


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    backend = sys.argv[2] if len(sys.argv) > 2 else "thread"
    target = os.path.join(os.getcwd(), "tests/unit/.libs/test_actors.so:cooperative")
    step = max(cycles // 10, 1)
    marks = []
    t0 = time.monotonic()
    with tether.Supervisor(backend=backend) as sup:
        for i in range(1, cycles + 1):
            a = sup.spawn(target)
            a.send(b"m" * 100)
            a.cancel()
            a.wait(timeout=10)
            if i % step == 0:
                gc.collect()
                marks.append(rss_kib())
                print(f"{i:6d} cycles  RSS {marks[-1]} KiB  ({time.monotonic() - t0:.1f} s)",
                      flush=True)
    grew = marks[-1] - marks[0]
    print(f"python_rss: {cycles} cycles on {backend}: RSS grew {grew} KiB after the first "
          f"{step} cycles ({(time.monotonic() - t0) / cycles * 1e6:.0f} us a cycle)")
    return 1 if grew > 2048 else 0


if __name__ == "__main__":
    sys.exit(main())
