#!/usr/bin/env python3
"""Runs a command and reports how busy each of its threads (and its children's) was, per
thread name, from /proc every half second: the busiest window, the 90th percentile and the
median, as a fraction of one core. Used to show which thread saturates (BENCHMARKS.md).

    scripts/thread-cpu.py ./target/release/rota bench --mode batch --tasks 400000 --quiet
"""
import collections
import os
import subprocess
import sys
import time

WINDOW_S = 0.5


def pids_of(root):
    pids = [root]
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open(f"/proc/{d}/stat").read()
            if int(st[st.rindex(")") + 2:].split()[1]) == root:
                pids.append(int(d))
        except OSError:
            pass
    return pids


def cpu_by_thread(pids):
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                s = open(f"/proc/{pid}/task/{tid}/stat").read()
            except OSError:
                continue
            name = s[s.index("(") + 1:s.rindex(")")]
            fields = s[s.rindex(")") + 2:].split()
            out[(pid, tid)] = (name, int(fields[11]) + int(fields[12]))
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    hz = os.sysconf("SC_CLK_TCK")
    p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    prev, busy = {}, collections.defaultdict(list)
    while p.poll() is None:
        now = cpu_by_thread(pids_of(p.pid))
        for key, (name, ticks) in now.items():
            if key in prev:
                busy[name].append((ticks - prev[key][1]) / hz / WINDOW_S)
        prev = now
        time.sleep(WINDOW_S)
    print(p.stdout.read().decode())
    print(f"{'thread':20s} {'windows':>7s} {'max':>5s} {'p90':>5s} {'median':>6s}")
    for name, xs in sorted(busy.items(), key=lambda kv: -max(kv[1] or [0])):
        xs = sorted(xs)
        print(f"{name:20s} {len(xs):7d} {xs[-1]:5.2f} {xs[int(len(xs) * 0.9)]:5.2f} "
              f"{xs[len(xs) // 2]:6.2f}")


if __name__ == "__main__":
    main()
