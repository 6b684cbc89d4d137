"""Shared by the peer benchmarks: argument parsing, CPU placement, records.

Each peer prints "R {json}" lines on stdout like bench/tbench (times in µs),
progress on stderr. Run with Debian's /usr/bin/python3."""
import json
import os
import sys
import time


def args():
    mode = sys.argv[1] if len(sys.argv) > 1 else "pinned"
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    budget = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
    if mode == "pinned":
        os.sched_setaffinity(0, {0})
    return mode, iters, budget


def loop(iters, budget, min_iters=100):
    """Yields iteration numbers until `iters` or the time budget is spent."""
    start = time.monotonic()
    i = 0
    while i < iters:
        t = time.monotonic() - start
        if t > 2 * budget or (i >= min(min_iters, iters) and t > budget):
            return
        yield i
        i += 1


def emit(figure, who, mode, samples, unit="us"):
    rec = {"figure": figure, "who": who, "mode": mode, "unit": unit,
           "samples": [round(s, 4) for s in samples]}
    print("R " + json.dumps(rec), flush=True)


def progress(text):
    print("bench: " + text, file=sys.stderr, flush=True)


now = time.perf_counter_ns
