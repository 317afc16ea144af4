#!/usr/bin/env python3
"""The handoff benchmarks of one run: streams, system calls per item, objects, memory, the pool.

    /usr/bin/python3 scripts/handoff_report.py BUILD_DIR [--out docs/handoff.md] [--repetitions 5]

BUILD_DIR is a Release build with -DNDSHM_BUILD_BENCHMARKS=ON (bench_perf, bench_objects, bench_core,
bench_processes built). In one run, this script:

1. runs bench_perf (pipe, Unix socket, the one-process floor, the channel, the queue with a fresh and
   with a recycled segment per item; 4 KiB, 256 KiB, 4 MiB, 36 MB and 64 MiB items) --repetitions
   times, interleaved at random, and keeps the best of each;
2. runs benchmarks/bench_handoff_python.py (/usr/bin/python3, multiprocessing.Queue and
   multiprocessing.shared_memory on the same streams), best of --repetitions rounds;
3. counts the system calls per item of each method with `perf stat -e raw_syscalls:sys_enter` (both
   processes): bench_perf --stream runs N and 2N items, and the difference is divided by N;
4. runs bench_objects (an object of 10,000 arrays of 1 KiB, receiver reads everything), bench_core's
   memory benchmarks (Pss of 4 readers of 1 GiB and of the creator) and bench_processes' pool rows.

and writes a Markdown report (the README's figures come from it).
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

KiB, MiB = 1 << 10, 1 << 20
SIZES = [4 * KiB, 256 * KiB, 4 * MiB, 36000000, 64 * MiB]
METHODS = ["floor", "pipe", "socket", "channel", "queue_fresh", "queue_recycled"]


def size_label(n):
    return "36 MB" if n == 36000000 else (f"{n // MiB} MiB" if n >= MiB else f"{n // KiB} KiB")


def human_time(s):
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.3g} µs"
    return f"{s * 1e9:.0f} ns"


def to_seconds(b):
    return b["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]


def google_benchmark(program, args, tmp):
    out = os.path.join(tmp, os.path.basename(program) + ".json")
    cmd = [program, "--benchmark_out=" + out, "--benchmark_out_format=json"] + args
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    with open(out) as f:
        data = json.load(f)
    best = {}
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
            continue
        name = re.sub(r"/(real_time|repeats:\d+|iterations:\d+)", "", b["name"])
        if name not in best or to_seconds(b) < to_seconds(best[name]):
            best[name] = b
    return best


def count_syscalls(bench_perf, method, nbytes, items):
    """System calls per item of `method` (both processes), from runs of `items` and 2 * `items`."""
    counts = []
    for n in (items, 2 * items):
        r = subprocess.run(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "--", bench_perf, "--stream",
                            method, str(nbytes), str(n)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"perf stat of {method} failed: {r.stderr}")
        line = next(l for l in r.stderr.splitlines() if "raw_syscalls:sys_enter" in l)
        counts.append(int(line.split(",")[0]))
    return (counts[1] - counts[0]) / items


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build")
    parser.add_argument("--out", default="docs/handoff.md")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--skip-others", action="store_true", help="only the streams and the system calls")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bench = os.path.join(args.build, "benchmarks")
    tmp = tempfile.mkdtemp(prefix="ndshm_handoff_")
    try:
        streams = google_benchmark(os.path.join(bench, "bench_perf"), [
            f"--benchmark_repetitions={args.repetitions}", "--benchmark_enable_random_interleaving=true",
            "--benchmark_min_time=0.2"], tmp)
        py_json = os.path.join(tmp, "python.json")
        cmd = ["/usr/bin/python3", os.path.join(root, "benchmarks", "bench_handoff_python.py"),
               f"--rounds={args.repetitions}", "--json", py_json]
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)
        with open(py_json) as f:
            python = {(r["method"], r["bytes"]): r for r in json.load(f)}
        syscalls = {}
        for nbytes, items in ((4 * KiB, 20000), (256 * KiB, 400), (36000000, 10)):
            for m in METHODS[1:]:
                syscalls[(m, nbytes)] = count_syscalls(os.path.join(bench, "bench_perf"), m, nbytes, items)
                print(f"syscalls per item: {m} {size_label(nbytes)}: {syscalls[(m, nbytes)]:.2f}", file=sys.stderr,
                      flush=True)
        others = {}
        if not args.skip_others:
            for prog, extra in (("bench_objects", ["--benchmark_repetitions=3"]),
                                ("bench_core", ["--benchmark_filter=BM_memory"]),
                                ("bench_processes", ["--benchmark_filter=BM_pool_map_memory|BM_serial_memory|"
                                                     "BM_pool_map_compute", "--benchmark_repetitions=3"])):
                others.update(google_benchmark(os.path.join(bench, prog), extra, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def per_item(m, nbytes):
        b = streams.get(f"BM_stream/method:{METHODS.index(m)}/bytes:{nbytes}")
        return to_seconds(b) / b["items"] if b else None

    lines = [
        "# Handoff benchmarks",
        "",
        f"Command: `/usr/bin/python3 scripts/handoff_report.py {args.build} --repetitions {args.repetitions}` "
        "(a Release build with `-DNDSHM_BUILD_BENCHMARKS=ON`), run inside a private /dev/shm "
        "(`unshare --mount --propagation private`, a tmpfs mounted on /dev/shm).  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}; load average "
        f"{os.getloadavg()[0]:.2f} at the end of the run. Best of {args.repetitions} runs each, interleaved.",
        "",
        "## Streams: the producer fills every element, the consumer sums every element",
        "",
        "Time per item. Ratios: to the floor (one process, a pre-faulted buffer, no IPC) and to the pipe "
        "(below 1 is faster than the pipe).",
        "",
        "| item | floor | pipe | Unix socket | channel | queue, recycled | queue, fresh | multiprocessing.Queue | "
        "multiprocessing.shared_memory |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for nbytes in SIZES:
        f, p = per_item("floor", nbytes), per_item("pipe", nbytes)
        if f is None or p is None:
            continue
        cells = [human_time(f), human_time(p), human_time(per_item("socket", nbytes))]
        for m in ("channel", "queue_recycled", "queue_fresh"):
            t = per_item(m, nbytes)
            cells.append(f"{human_time(t)} ({t / f:.2f}x floor, {t / p:.2f}x pipe)")
        for m in ("mp_queue", "shared_memory"):
            r = python.get((m, nbytes))
            cells.append(f"{human_time(r['per_item'])} ({r['per_item'] / p:.1f}x pipe)" if r else "")
        items = streams[f"BM_stream/method:0/bytes:{nbytes}"]["items"]
        lines.append(f"| {size_label(nbytes)} ({items:.0f} per run) | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## System calls per item (producer and consumer together)",
        "",
        "`perf stat -e raw_syscalls:sys_enter` over `bench_perf --stream METHOD BYTES N` and `2N` items; the "
        "difference divided by N (so setup and warm-up cancel out).",
        "",
        "| item | pipe | Unix socket | channel | queue, recycled | queue, fresh |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for nbytes in (4 * KiB, 256 * KiB, 36000000):
        lines.append(f"| {size_label(nbytes)} | " + " | ".join(
            f"{syscalls[(m, nbytes)]:.1f}" for m in ("pipe", "socket", "channel", "queue_recycled", "queue_fresh")) + " |")
    if others:
        def t(name):
            b = others.get(name)
            return to_seconds(b) if b else None

        sep, rec, views = t("separate_segments"), t("ndshm_queue_recycled"), t("ndshm_share_load/views:1")
        lines += ["", "## An object of 10,000 arrays of 1 KiB, share + load, the receiver reads everything", "",
                  "| method | time | vs 10,000 separate segments |", "| --- | --- | --- |",
                  f"| 10,000 separate segments (from_array + attach each) | {human_time(sep)} | 1x |",
                  f"| `share` into a new segment + `load`, views | {human_time(views)} | {sep / views:.1f}x faster |",
                  f"| `share(obj, queue)` into a recycled segment, `pop_object` + `load`, views | {human_time(rec)} | "
                  f"{sep / rec:.1f}x faster |"]
        mem = {k: others[k]["pss_sum_MiB"] for k in others if k.startswith("BM_memory") and "pss_sum_MiB" in others[k]}
        lines += ["", "## Memory: 4 processes reading one 1 GiB array (sum of Pss of the readers and the creator, "
                  "measured once all have loaded)", "", "| what | sum of Pss |", "| --- | --- |"]
        for k, v in sorted(mem.items()):
            lines.append(f"| {k.split('/')[0].replace('BM_memory_4_readers_', '')} | {v:.0f} MiB |")
        lines += ["", "## Pool: a memory-bound map over a shared array", "", "| what | time |", "| --- | --- |"]
        for k in sorted(others):
            if k.startswith(("BM_pool_map_memory", "BM_serial_memory", "BM_pool_map_compute")):
                lines.append(f"| {k} | {human_time(t(k))} |")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
