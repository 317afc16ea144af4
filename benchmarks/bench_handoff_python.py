"""The Python libraries on bench_perf's workloads: what ndshm's queue and channel are compared with.

    /usr/bin/python3 benchmarks/bench_handoff_python.py [--rounds N] [--sizes 4096,...] [--json FILE]

The same streams as benchmarks/bench_perf.cpp (items of 4 KiB, 256 KiB, 4 MiB, 36 MB and 64 MiB; item k
holds k + i as uint32 at element i; the producer fills every element, the consumer sums every element
as uint64 and the sums are checked), from a producer to a consumer process forked before the timing:

    mp_queue        multiprocessing.Queue: a new NumPy array per item, pickled through a pipe
    shared_memory   multiprocessing.shared_memory: a new block per item, its name through a
                    multiprocessing.Queue; the consumer attaches, sums, closes and unlinks it

Both queues hold as many items as bench_perf's queue (16 up to 256 KiB, 4 above). One untimed run warms
each method up; the result is the best of --rounds timed runs, in seconds per run and per item.
Needs NumPy (Debian: python3-numpy for /usr/bin/python3). scripts/handoff_report.py runs it beside
bench_perf.
"""
import argparse
import json
import multiprocessing as mp
import sys
import time
from multiprocessing import resource_tracker, shared_memory

import numpy as np

KiB, MiB = 1 << 10, 1 << 20
SIZES = [4 * KiB, 256 * KiB, 4 * MiB, 36000000, 64 * MiB]


def items_for(nbytes):
    """Items per run, as in bench_perf."""
    if nbytes <= 4 * KiB:
        return 20000
    if nbytes <= 256 * KiB:
        return 400
    if nbytes <= 4 * MiB:
        return 25
    return 10


def slots_for(nbytes):
    return 16 if nbytes <= 256 * KiB else 4


def expected(first, items, n):
    return sum(n * k + n * (n - 1) // 2 for k in range(first, first + items))


def consume_mp_queue(q, n, commands, results):
    while True:
        cmd = commands.recv()
        if cmd is None:
            return
        total = 0
        for _ in range(cmd[1]):
            a = q.get()
            total += int(a.sum(dtype=np.uint64))
        results.send(total)


def consume_shared_memory(q, n, commands, results):
    while True:
        cmd = commands.recv()
        if cmd is None:
            return
        total = 0
        for _ in range(cmd[1]):
            shm = shared_memory.SharedMemory(q.get())
            a = np.ndarray((n,), np.uint32, buffer=shm.buf)
            total += int(a.sum(dtype=np.uint64))
            del a
            shm.close()
            shm.unlink()
        results.send(total)


class Stream:
    """A producer (this process) and a consumer process, forked once, fed run after run."""

    def __init__(self, method, nbytes):
        self.method, self.n, self.next = method, nbytes // 4, 0
        self.base = np.arange(self.n, dtype=np.uint32)
        ctx = mp.get_context("fork")
        self.q = ctx.Queue(maxsize=slots_for(nbytes))
        cmd_r, cmd_w = ctx.Pipe(duplex=False)
        res_r, res_w = ctx.Pipe(duplex=False)
        target = consume_mp_queue if method == "mp_queue" else consume_shared_memory
        self.proc = ctx.Process(target=target, args=(self.q, self.n, cmd_r, res_w))
        self.proc.start()
        self.commands, self.results = cmd_w, res_r

    def run(self, items):
        first = self.next
        self.next += items
        t0 = time.perf_counter()
        self.commands.send((first, items))
        for k in range(first, first + items):
            if self.method == "mp_queue":
                self.q.put(np.add(self.base, np.uint32(k)))  # a new array: put() pickles it later, in a thread
            else:
                shm = shared_memory.SharedMemory(create=True, size=self.n * 4)
                a = np.ndarray((self.n,), np.uint32, buffer=shm.buf)
                np.add(self.base, np.uint32(k), out=a)
                del a
                self.q.put(shm.name)
                shm.close()
        got = self.results.recv()
        elapsed = time.perf_counter() - t0
        if got != expected(first, items, self.n):
            raise RuntimeError(f"{self.method}: wrong sum {got}")
        return elapsed

    def close(self):
        self.commands.send(None)
        self.proc.join()
        if self.proc.exitcode != 0:
            raise RuntimeError(f"the {self.method} consumer exited with {self.proc.exitcode}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--json", help="write the results here as JSON as well")
    args = parser.parse_args()
    # The consumer unlinks what the producer created: both must talk to one resource tracker, started
    # before the fork, or it would report (and unlink again) blocks that are already gone.
    resource_tracker.ensure_running()
    rows = []
    for nbytes in (int(s) for s in args.sizes.split(",")):
        items = items_for(nbytes)
        for method in ("mp_queue", "shared_memory"):
            s = Stream(method, nbytes)
            try:
                s.run(max(items // 4, 4))  # warm-up
                best = min(s.run(items) for _ in range(args.rounds))
            finally:
                s.close()
            rows.append({"method": method, "bytes": nbytes, "items": items, "seconds": best,
                         "per_item": best / items})
            print(f"{method:14} {nbytes:>10} B x {items:>5}: {best * 1e3:9.2f} ms, "
                  f"{best / items * 1e6:9.2f} us per item", file=sys.stderr, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    else:
        json.dump(rows, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
