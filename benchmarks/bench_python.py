"""ndshm's Python module beside what Python users have, measured side by side in one run.

    PYTHONPATH=build/python /usr/bin/python3 benchmarks/bench_python.py [--quick] [--repeat N] [--out FILE]

1. Attaching an existing array by name, per call (the object dropped again, its mapping closed):
   ndshm.attach(name), against multiprocessing.shared_memory.SharedMemory(name) + np.ndarray over its
   buffer, and against np.load('/dev/shm/' + name, mmap_mode='r'), on the same segment.
2. Handing frames to another process: 10 frames of 36 MB float32 (3000 x 3000); the producer fills each
   frame, the consumer sums each one. At most a few frames are in flight (queues of 2, a channel of 3
   slots). Timed from the producer's start to the consumer's last sum, processes already started:
   - ndshm.Queue: a new segment per frame (ndshm.create, fill, push; pop, sum; the popper's last
     array unlinks it)
   - ndshm.Channel: 3 slots created and faulted in once, before the timing (loan, fill, publish;
     receive, sum)
   - multiprocessing.Queue: each frame pickled through a pipe
   - multiprocessing.shared_memory: a new block per frame, its name through a multiprocessing.Queue
     (the consumer attaches, sums, closes and unlinks it)
   - the floor: one process fills and sums one buffer that is already faulted in, no second process.

--quick runs small sizes once (the test suite runs it so that the script keeps working); --out writes
the Markdown report to FILE as well. Needs NumPy and the ndshm module (built with the project).
"""
import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from multiprocessing import resource_tracker, shared_memory

import numpy as np

import ndshm

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def human_bytes(n):
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def human_time(s):
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} µs"


def ratio(baseline, ours):
    """'2.1x faster' when ours takes less time than the baseline, '1.3x slower' otherwise."""
    return f"{baseline / ours:.1f}x faster" if ours <= baseline else f"{ours / baseline:.1f}x slower"


def per_call(fn, min_batch_time, batches):
    """Median seconds per call of fn() over `batches` batches of at least `min_batch_time` each."""
    n = 1
    while True:  # calibrate the batch size
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_batch_time or n >= 1 << 20:
            break
        n *= 2 if elapsed <= 0 else max(2, min(16, int(min_batch_time / elapsed) + 1))
    times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


# -- 1. attach ---------------------------------------------------------------------------------------

def bench_attach(sizes, min_batch_time, batches):
    rows = []
    for nbytes in sizes:
        a = ndshm.create(nbytes // 8, "float64")  # owned here; unlinked when `a` goes
        name = ndshm.name_of(a)
        shape, dtype, path = a.shape, a.dtype, "/dev/shm/" + name

        def with_ndshm():
            b = ndshm.attach(name)
            del b

        def with_shared_memory():
            shm = shared_memory.SharedMemory(name)
            b = np.ndarray(shape, dtype, buffer=shm.buf, offset=4096)
            del b
            shm.close()

        def with_np_load():
            b = np.load(path, mmap_mode="r")
            del b

        row = {"bytes": nbytes}
        for key, fn in (("ndshm", with_ndshm), ("shared_memory", with_shared_memory), ("np_load", with_np_load)):
            row[key] = per_call(fn, min_batch_time, batches)
        # SharedMemory(name) registers the name with multiprocessing's resource tracker (before Python
        # 3.13 it cannot be told not to), which would unlink it at exit: take it back.
        resource_tracker.unregister("/" + name, "shared_memory")
        rows.append(row)
        del a
    return rows


# -- 2. handoff --------------------------------------------------------------------------------------

def consume_ndshm_queue(qname, frames, shape, ready, result):
    q = ndshm.Queue.attach(qname)
    ready.send(True)
    total = 0.0
    for a in q:  # until the producer closes the queue
        total += float(a.sum(dtype=np.float64))
        del a  # the last array over it: this process owns it and unlinks it
    result.send(total)


def produce_ndshm_queue(frames, shape, start_consumer):
    q = ndshm.Queue.create(2)
    finish = start_consumer(consume_ndshm_queue, q.name)
    t0 = time.perf_counter()
    for i in range(frames):
        a = ndshm.create(shape, "float32")
        a.fill(i)
        q.push(a)
        del a
    q.close()
    return finish(t0)


def consume_ndshm_channel(chname, frames, shape, ready, result):
    ch = ndshm.Channel.attach(chname)
    ready.send(True)
    total = 0.0
    for frame in ch:  # each slot is released when the loop moves on
        total += float(frame.sum(dtype=np.float64))
    result.send(total)


def produce_ndshm_channel(frames, shape, start_consumer):
    ch = ndshm.Channel.create(shape, "float32", slots=3)  # faulted in here, before the timing
    finish = start_consumer(consume_ndshm_channel, ch.name)
    t0 = time.perf_counter()
    for i in range(frames):
        f = ch.loan()
        f.fill(i)
        ch.publish(f)
    ch.close()
    return finish(t0)


def consume_mp_queue(q, frames, shape, ready, result):
    ready.send(True)
    total = 0.0
    for _ in range(frames):
        a = q.get()
        total += float(a.sum(dtype=np.float64))
        del a
    result.send(total)


def produce_mp_queue(frames, shape, start_consumer):
    q = mp.get_context("fork").Queue(maxsize=2)
    finish = start_consumer(consume_mp_queue, q)
    t0 = time.perf_counter()
    for i in range(frames):
        a = np.empty(shape, np.float32)
        a.fill(i)
        q.put(a)
        del a
    return finish(t0)


def consume_shared_memory(q, frames, shape, ready, result):
    ready.send(True)
    total = 0.0
    for _ in range(frames):
        shm = shared_memory.SharedMemory(q.get())
        a = np.ndarray(shape, np.float32, buffer=shm.buf)
        total += float(a.sum(dtype=np.float64))
        del a
        shm.close()
        shm.unlink()
    result.send(total)


def produce_shared_memory(frames, shape, start_consumer):
    q = mp.get_context("fork").Queue(maxsize=2)
    finish = start_consumer(consume_shared_memory, q)
    nbytes = int(np.prod(shape)) * 4
    t0 = time.perf_counter()
    for i in range(frames):
        shm = shared_memory.SharedMemory(create=True, size=nbytes)
        a = np.ndarray(shape, np.float32, buffer=shm.buf)
        a.fill(i)
        del a
        q.put(shm.name)
        shm.close()
    return finish(t0)


def floor(frames, shape):
    buf = np.empty(shape, np.float32)
    buf.fill(0)  # faulted in before the timing
    t0 = time.perf_counter()
    total = 0.0
    for i in range(frames):
        buf.fill(i)
        total += float(buf.sum(dtype=np.float64))
    return time.perf_counter() - t0, total


def run_pair(producer, frames, shape):
    """Runs producer() here and its consumer in a forked process; returns (seconds, the consumer's total)."""
    ctx = mp.get_context("fork")
    procs = []

    def start_consumer(consumer, endpoint):
        ready_r, ready_w = ctx.Pipe(duplex=False)
        result_r, result_w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=consumer, args=(endpoint, frames, shape, ready_w, result_w))
        p.start()
        procs.append(p)
        ready_r.recv()  # the consumer is up and has opened its end

        def finish(t0):
            total = result_r.recv()
            return time.perf_counter() - t0, total

        return finish

    elapsed, total = producer(frames, shape, start_consumer)
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"the consumer of {producer.__name__} exited with {p.exitcode}")
    return elapsed, total


def bench_handoff(frames, shape, repeat):
    expected = float(sum(range(frames))) * int(np.prod(shape))
    methods = [
        ("ndshm.Queue, a new segment per frame", lambda: run_pair(produce_ndshm_queue, frames, shape)),
        ("ndshm.Channel, 3 slots reused", lambda: run_pair(produce_ndshm_channel, frames, shape)),
        ("multiprocessing.Queue, pickled", lambda: run_pair(produce_mp_queue, frames, shape)),
        ("multiprocessing.shared_memory, a new block per frame",
         lambda: run_pair(produce_shared_memory, frames, shape)),
        ("floor: one process, one buffer already faulted in", lambda: floor(frames, shape)),
    ]
    results = {}
    # Interleaved rounds, so that a slow phase of the machine does not fall on one method only.
    for _ in range(repeat):
        for label, run in methods:
            elapsed, total = run()
            if total != expected:
                raise RuntimeError(f"{label}: the consumer summed {total}, expected {expected}")
            results.setdefault(label, []).append(elapsed)
    return [(label, statistics.median(times), min(times)) for label, times in results.items()]


# -- report ------------------------------------------------------------------------------------------

def report(args, attach_rows, handoff_rows, frames, shape):
    frame_bytes = int(np.prod(shape)) * 4
    lines = [
        "# ndshm's Python module: benchmarks",
        "",
        f"Command: `PYTHONPATH=build/python /usr/bin/python3 benchmarks/bench_python.py"
        f"{' --quick' if args.quick else ''} --repeat {args.repeat}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}; Python "
        f"{platform.python_version()}, NumPy {np.__version__}, ndshm {ndshm.__version__}; load average "
        f"{os.getloadavg()[0]:.2f} at the end of the run.",
        "",
        "## Attach an existing array by name (per call, median)",
        "",
        "| size | ndshm.attach | SharedMemory + np.ndarray | np.load(mmap_mode='r') | vs SharedMemory | vs np.load |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in attach_rows:
        lines.append(f"| {human_bytes(r['bytes'])} | {human_time(r['ndshm'])} | {human_time(r['shared_memory'])} | "
                     f"{human_time(r['np_load'])} | {ratio(r['shared_memory'], r['ndshm'])} | "
                     f"{ratio(r['np_load'], r['ndshm'])} |")
    floor_time = next(t for label, t, _ in handoff_rows if label.startswith("floor"))
    pickled = next(t for label, t, _ in handoff_rows if label.startswith("multiprocessing.Queue"))
    lines += [
        "",
        f"## Hand {frames} frames of {frame_bytes / 1e6:g} MB float32 {tuple(shape)} to another process "
        f"(producer fills, consumer sums)",
        "",
        f"Median of {args.repeat} rounds (best in brackets), from the first fill to the consumer's last sum.",
        "",
        "| method | total | per frame | GB/s | vs pickling | vs the floor |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, t, best in handoff_rows:
        gbs = frames * frame_bytes / t / 1e9
        lines.append(f"| {label} | {human_time(t)} ({human_time(best)}) | {human_time(t / frames)} | {gbs:.2f} | "
                     f"{ratio(pickled, t) if t != pickled else '1x'} | {t / floor_time:.2f}x its time |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, once: checks that it runs")
    parser.add_argument("--repeat", type=int, default=None, help="rounds of the handoff (default 5; 1 quick)")
    parser.add_argument("--out", help="also write the Markdown report to this file")
    args = parser.parse_args()
    if args.repeat is None:
        args.repeat = 1 if args.quick else 5
    if args.quick:
        sizes, min_batch, batches = [KiB, MiB], 0.02, 3
        frames, shape = 3, (512, 512)
    else:
        sizes, min_batch, batches = [KiB, MiB, 64 * MiB, GiB], 0.3, 7
        frames, shape = 10, (3000, 3000)  # 36 MB of float32 each

    print(f"attach: {', '.join(human_bytes(s) for s in sizes)} ...", file=sys.stderr, flush=True)
    attach_rows = bench_attach(sizes, min_batch, batches)
    print(f"handoff: {frames} frames of {shape} float32, {args.repeat} rounds ...", file=sys.stderr, flush=True)
    handoff_rows = bench_handoff(frames, shape, args.repeat)
    text = report(args, attach_rows, handoff_rows, frames, shape)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
