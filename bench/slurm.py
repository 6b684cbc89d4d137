#!/usr/bin/python3
"""bench/slurm.py - the slurm backend's figures beside their Slurm floors,
measured in the same run (bench/run.py calls it when a controller answers;
it can also be run alone):

  spawn -> ready        tether_spawn of a no-op actor   vs  a bare `srun -N1 -n1 true`
  call round trip       tether_call ping                vs  64 bytes echoed by `srun -u cat`
  teardown              cancel of a cooperative actor   (cancel -> outcome known)

    /usr/bin/python3 bench/slurm.py --builddir DIR --srcdir DIR [--quick] [--out DIR]

Writes RESULTS-slurm.md into --out (default srcdir/bench). Needs SLURM_CONF
(or /etc/slurm) naming a cluster whose controller answers `scontrol ping`.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def stats(xs):
    return {"n": len(xs), "median": statistics.median(xs), "p99": pct(xs, 99)} if xs else None


def floor_srun_true(n):
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        subprocess.run(["srun", "-Q", "-N1", "-n1", "true"], check=True, timeout=60,
                       stdin=subprocess.DEVNULL)
        out.append((time.monotonic() - t0) * 1e6)
    return out


def floor_srun_cat(n):
    p = subprocess.Popen(["srun", "-u", "-Q", "-N1", "-n1", "cat"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, bufsize=0)
    msg = bytes(range(64))
    out = []
    try:
        for i in range(n + 20):
            t0 = time.monotonic()
            p.stdin.write(msg)
            got = b""
            while len(got) < len(msg):
                chunk = p.stdout.read(len(msg) - len(got))
                if not chunk:
                    raise RuntimeError("srun -u cat ended early")
                got += chunk
            if i >= 20:  # the first ones include the step's start
                out.append((time.monotonic() - t0) * 1e6)
            if got != msg:
                raise RuntimeError("srun -u cat changed the bytes")
    finally:
        p.stdin.close()
        p.wait(timeout=30)
    return out


def tbench(a, cfg, test, iters, budget):
    tb = os.path.join(a.builddir, "bench", "tbench")
    cmd = [tb, "run", "--config", cfg, "--backend", "slurm", "--test", test, "--mode", "unpinned",
           "--builddir", a.builddir, "--srcdir", a.srcdir, "--iters", str(iters),
           "--budget", str(budget)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=4 * budget + 120)
    rows = [json.loads(line[2:]) for line in p.stdout.splitlines() if line.startswith("R ")]
    return {r["figure"]: stats(r["samples"]) for r in rows
            if r.get("who") == "slurm" and r.get("samples")}


def fmt(us):
    return f"{us / 1000:.1f} ms" if us >= 1000 else f"{us:.0f} µs"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--srcdir", required=True)
    ap.add_argument("--config", help="plugins.yaml with absolute backend paths")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    a.builddir, a.srcdir = os.path.abspath(a.builddir), os.path.abspath(a.srcdir)
    ping = subprocess.run(["scontrol", "ping"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=15).stdout
    if "is UP" not in ping:
        print(f"bench/slurm.py: no Slurm controller answers ({ping.strip()}): skipped",
              file=sys.stderr)
        return 0
    cfg = a.config
    if not cfg:
        cfg = os.path.join(a.builddir, "bench", "bench-slurm.yaml")
        with open(os.path.join(a.srcdir, "plugins.yaml")) as f:
            text = f.read().replace("path: backends/", f"path: {a.builddir}/backends/")
            text = text.replace("helper: cli/", f"helper: {a.builddir}/cli/")
        os.makedirs(os.path.dirname(cfg), exist_ok=True)
        with open(cfg, "w") as f:
            f.write(text)
    k = 4 if a.quick else 1
    t0 = time.monotonic()
    print("bench/slurm.py: floors (srun true, srun -u cat)", file=sys.stderr)
    f_spawn = stats(floor_srun_true(40 // k))
    f_echo = stats(floor_srun_cat(2000 // k))
    print("bench/slurm.py: tether slurm spawn, call, cancel", file=sys.stderr)
    sp = tbench(a, cfg, "spawn", 40 // k, 20)
    ca = tbench(a, cfg, "call", 2000 // k, 5)
    cn = tbench(a, cfg, "cancel", 40 // k, 20)
    rows = [
        ("spawn -> ready", sp.get("spawn_ready"), "bare `srun -N1 -n1 true`", f_spawn),
        ("spawn cycle (ready + exit + reap)", sp.get("spawn_cycle"), "bare `srun -N1 -n1 true`",
         f_spawn),
        ("call round trip", ca.get("call_rtt"), "64 B echo through `srun -u cat`", f_echo),
        ("teardown (cancel -> outcome)", cn.get("cancel_coop"), "-", None),
    ]
    lines = ["# tether slurm backend: figures and Slurm floors", "",
             f"One-node Slurm cluster ({ping.strip()}); {os.cpu_count()} CPUs; medians and p99 "
             f"in one run of {time.monotonic() - t0:.0f} s. Ratios are recorded, not asserted.", "",
             "| figure | tether slurm (median / p99) | floor | floor (median / p99) | ratio |",
             "| --- | --- | --- | --- | --- |"]
    for name, r, fname, f in rows:
        tv = f"{fmt(r['median'])} / {fmt(r['p99'])}" if r else "not measured"
        fv = f"{fmt(f['median'])} / {fmt(f['p99'])}" if f else "-"
        ratio = f"{r['median'] / f['median']:.2f}" if r and f else "-"
        lines.append(f"| {name} | {tv} | {fname} | {fv} | {ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = a.out or os.path.join(a.srcdir, "bench")
    with open(os.path.join(out, "RESULTS-slurm.md"), "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
