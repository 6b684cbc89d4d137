"""Peer of bench/gilbench: CPython 3.14's own sub-interpreter APIs (PEP 734),
each interpreter with its own GIL.

    interp_peer.py [COUNT] [ROUNDS]

gil_parallel  one, then two interpreters counting to COUNT at once:
              concurrent.interpreters.create() + .call() from two threads
              (py-interpreters), and InterpreterPoolExecutor with two
              workers (py-interppool); two_s / one_s as gilbench.
gil_spawn     concurrent.interpreters.create() + call(a no-op) + close, ms
              (quiet, and beside an interpreter spinning in a thread).

Where the APIs do not exist (before 3.14) it prints one note record and
exits 0. Run it with the Python the subint plugin is built against.
"""
import json
import os
import sys
import threading
import time


def rec(**kw):
    print("R " + json.dumps(kw), flush=True)


def count(n):
    i = 0
    while i < n:
        i += 1
    return i


def noop():
    return 0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    ver = "%d.%d.%d" % sys.version_info[:3]
    try:
        from concurrent import interpreters
    except ImportError:
        rec(figure="gil_parallel", who="py-interpreters", mode="unpinned",
            note=f"not run: no concurrent.interpreters in CPython {ver} (3.14+)")
        return
    # create() + call() from threads
    def timed(k):
        interps = [interpreters.create() for _ in range(k)]
        try:
            ts = [threading.Thread(target=it.call, args=(count, n)) for it in interps]
            t0 = time.monotonic()
            for t in ts:
                t.start()
            for t in ts:
                t.join(120)
            return time.monotonic() - t0
        finally:
            for it in interps:
                it.close()
    one, two = timed(1), timed(2)
    rec(figure="gil_parallel", who="py-interpreters", mode="unpinned", count=n,
        one_s=round(one, 3), two_s=round(two, 3), speedup=round(2 * one / two, 2))
    print(f"interp_peer py-interpreters: one {one:.3f} s, two {two:.3f} s, "
          f"speed-up {2 * one / two:.2f}", file=sys.stderr)
    try:
        from concurrent.futures import InterpreterPoolExecutor
    except ImportError:
        rec(figure="gil_parallel", who="py-interppool", mode="unpinned",
            note=f"not run: no InterpreterPoolExecutor in CPython {ver}")
    else:
        res = {}
        for k in (1, 2):
            with InterpreterPoolExecutor(max_workers=k) as ex:
                ex.submit(noop).result(60)  # workers started outside the timing
                t0 = time.monotonic()
                for f in [ex.submit(count, n) for _ in range(k)]:
                    f.result(120)
                res[k] = time.monotonic() - t0
        rec(figure="gil_parallel", who="py-interppool", mode="unpinned", count=n,
            one_s=round(res[1], 3), two_s=round(res[2], 3),
            speedup=round(2 * res[1] / res[2], 2))
        print(f"interp_peer py-interppool: one {res[1]:.3f} s, two {res[2]:.3f} s, "
              f"speed-up {2 * res[1] / res[2]:.2f}", file=sys.stderr)

    # spawn: create + first call + close, quiet and beside a spinner
    def spawn_samples():
        out = []
        for _ in range(rounds):
            time.sleep(0.02)
            t0 = time.monotonic()
            it = interpreters.create()
            it.call(noop)
            out.append((time.monotonic() - t0) * 1e3)
            it.close()
        return out
    rec(figure="gil_spawn", who="py-interpreters", mode="quiet", unit="ms",
        samples=[round(s, 1) for s in spawn_samples()])
    spinner = interpreters.create()
    t = threading.Thread(target=spinner.call, args=(count, 10 ** 12), daemon=True)
    t.start()
    time.sleep(0.05)
    rec(figure="gil_spawn", who="py-interpreters", mode="beside_spinner", unit="ms",
        samples=[round(s, 1) for s in spawn_samples()])
    # the spinner cannot be stopped from here (PEP 734 has no cancel), and
    # finalising with it running would wait for it: leave at once
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
