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
   processes): bench_perf --stream runs N and 2N items (3 times each, the median kept), and the
   difference is divided by N;
4. runs bench_objects (an object of 10,000 arrays of 1 KiB, receiver reads everything), bench_core's
   memory benchmarks (Pss of 4 readers of 1 GiB and of the creator) and bench_processes' pool rows.

and writes a Markdown report (the README's figures come from it), the results as JSON beside it
(docs/handoff.json) and a plot (docs/handoff.png, with matplotlib). --from-json renders both again from
an earlier run's JSON without running anything.
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
    """System calls per item of `method` (both processes), from runs of `items` and 2 * `items`: the
    median of 3 runs each, since a socket's count moves by hundreds between runs of the same size."""
    counts = []
    for n in (items, 2 * items):
        runs = []
        for _ in range(3):
            r = subprocess.run(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "--", bench_perf,
                                "--stream", method, str(nbytes), str(n)], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"perf stat of {method} failed: {r.stderr}")
            line = next(l for l in r.stderr.splitlines() if "raw_syscalls:sys_enter" in l)
            runs.append(int(line.split(",")[0]))
        counts.append(sorted(runs)[1])
    return (counts[1] - counts[0]) / items


def collect(args, root):
    """Runs everything; returns the results as plain data (also written next to the report as JSON)."""
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
            python = json.load(f)
        syscalls = {}
        for nbytes, items in ((4 * KiB, 20000), (256 * KiB, 400), (36000000, 10)):
            for m in METHODS[1:]:
                c = count_syscalls(os.path.join(bench, "bench_perf"), m, nbytes, items)
                syscalls.setdefault(m, {})[str(nbytes)] = c
                print(f"syscalls per item: {m} {size_label(nbytes)}: {c:.2f}", file=sys.stderr, flush=True)
        others = {}
        if not args.skip_others:
            for prog, extra in (("bench_objects", ["--benchmark_repetitions=3"]),
                                ("bench_core", ["--benchmark_filter=BM_memory"]),
                                ("bench_processes", ["--benchmark_filter=BM_pool_map_memory|BM_serial_memory|"
                                                     "BM_pool_map_compute", "--benchmark_repetitions=3"])):
                others.update(google_benchmark(os.path.join(bench, prog), extra, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_item = {}
    for nbytes in SIZES:
        for i, m in enumerate(METHODS):
            b = streams.get(f"BM_stream/method:{i}/bytes:{nbytes}")
            if b:
                per_item.setdefault(m, {})[str(nbytes)] = to_seconds(b) / b["items"]
    for r in python:
        per_item.setdefault(r["method"], {})[str(r["bytes"])] = r["per_item"]
    return {
        "repetitions": args.repetitions,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}",
        "load_average": os.getloadavg()[0],
        "per_item": per_item,
        "syscalls_per_item": syscalls,
        "seconds": {k: to_seconds(b) for k, b in others.items()},
        "pss_sum_MiB": {k: b["pss_sum_MiB"] for k, b in others.items() if "pss_sum_MiB" in b},
    }


LABELS = {"floor": "floor", "pipe": "pipe", "socket": "Unix socket", "channel": "channel",
          "queue_recycled": "queue, recycled", "queue_fresh": "queue, fresh", "mp_queue": "multiprocessing.Queue",
          "shared_memory": "multiprocessing.shared_memory"}


def markdown(d, build):
    pi = d["per_item"]
    lines = [
        "# Handoff benchmarks",
        "",
        f"Command: `/usr/bin/python3 scripts/handoff_report.py {build} --repetitions {d['repetitions']}` "
        "(a Release build with `-DNDSHM_BUILD_BENCHMARKS=ON`), run inside a private /dev/shm "
        "(`unshare --mount --propagation private`, a tmpfs mounted on /dev/shm).  ",
        f"Machine: {d['machine']}; load average {d['load_average']:.2f} at the end of the run. Best of "
        f"{d['repetitions']} runs each, interleaved.",
        "",
        "## Streams: the producer fills every element, the consumer sums every element",
        "",
        "Time per item. Ratios: to the floor (one process, a pre-faulted buffer, no IPC) and to the pipe "
        "(below 1 is faster than the pipe).",
        "",
        "| item | " + " | ".join(LABELS[m] for m in ("floor", "pipe", "socket", "channel", "queue_recycled",
                                                      "queue_fresh", "mp_queue", "shared_memory")) + " |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for nbytes in map(str, SIZES):
        f, p = pi.get("floor", {}).get(nbytes), pi.get("pipe", {}).get(nbytes)
        if f is None or p is None:
            continue
        cells = [human_time(f), human_time(p), human_time(pi["socket"][nbytes])]
        for m in ("channel", "queue_recycled", "queue_fresh"):
            t = pi[m][nbytes]
            cells.append(f"{human_time(t)} ({t / f:.2f}x floor, {t / p:.2f}x pipe)")
        for m in ("mp_queue", "shared_memory"):
            t = pi.get(m, {}).get(nbytes)
            cells.append(f"{human_time(t)} ({t / p:.1f}x pipe)" if t else "")
        lines.append(f"| {size_label(int(nbytes))} | " + " | ".join(cells) + " |")
    sc = d["syscalls_per_item"]
    lines += [
        "",
        "## System calls per item (producer and consumer together)",
        "",
        "`perf stat -e raw_syscalls:sys_enter` over `bench_perf --stream METHOD BYTES N` and `2N` items; the "
        "difference divided by N (so setup and warm-up cancel out), each count the median of 3 runs. "
        "A socket's count moves between runs (its reads split as the scheduler lets them); figures within "
        "a few tenths of 0, negative ones included, mean none per item.",
        "",
        "| item | pipe | Unix socket | channel | queue, recycled | queue, fresh |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for nbytes in map(str, (4 * KiB, 256 * KiB, 36000000)):
        lines.append(f"| {size_label(int(nbytes))} | " + " | ".join(
            f"{sc[m][nbytes]:.1f}" for m in ("pipe", "socket", "channel", "queue_recycled", "queue_fresh")) + " |")
    t = d["seconds"]
    if t:
        sep, rec, views = t["separate_segments"], t["ndshm_queue_recycled"], t["ndshm_share_load/views:1"]
        lines += ["", "## An object of 10,000 arrays of 1 KiB, share + load, the receiver reads everything", "",
                  "| method | time | vs 10,000 separate segments |", "| --- | --- | --- |",
                  f"| 10,000 separate segments (from_array + attach each) | {human_time(sep)} | 1x |",
                  f"| `share` into a new segment + `load`, views | {human_time(views)} | {sep / views:.1f}x faster |",
                  f"| `share(obj, queue)` into a recycled segment, `pop_object` + `load`, views | {human_time(rec)} | "
                  f"{sep / rec:.1f}x faster |"]
        lines += ["", "## Memory: 4 processes reading one 1 GiB array (sum of Pss of the readers and the creator, "
                  "measured once all have loaded)", "", "| what | sum of Pss |", "| --- | --- |"]
        for k, v in sorted(d["pss_sum_MiB"].items()):
            lines.append(f"| {k.split('/')[0].replace('BM_memory_4_readers_', '')} | {v:.0f} MiB |")
        lines += ["", "## Pool: a map over a shared array (0: in-process, 1 and 2: workers), and the same "
                  "memory-bound loop serially", "", "| what | time |", "| --- | --- |"]
        for k in sorted(t):
            if k.startswith(("BM_pool_map_memory", "BM_serial_memory", "BM_pool_map_compute")):
                lines.append(f"| {k} | {human_time(t[k])} |")
    return "\n".join(lines) + "\n"


def plot(d, path):
    """Time per item relative to the floor, one group of bars per item size (log scale)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (Debian: python3-matplotlib): no plot", file=sys.stderr)
        return False
    pi = d["per_item"]
    methods = [m for m in ("pipe", "socket", "channel", "queue_recycled", "queue_fresh", "mp_queue", "shared_memory")
               if m in pi]
    sizes = [str(s) for s in SIZES if str(s) in pi.get("floor", {})]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        ys = [pi[m].get(s, float("nan")) / pi["floor"][s] for s in sizes]
        ax.bar([i + j * width for i in range(len(sizes))], ys, width, label=LABELS[m])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))])
    ax.set_xticklabels([size_label(int(s)) for s in sizes])
    ax.set_ylabel("time per item / the floor's (log)")
    ax.set_title("Producer fills, consumer reads every byte: time per item against the one-process floor")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build")
    parser.add_argument("--out", default="docs/handoff.md")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--skip-others", action="store_true", help="only the streams and the system calls")
    parser.add_argument("--from-json", help="render the report and plot from an earlier run's JSON, run nothing")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = os.path.splitext(args.out)[0]
    if args.from_json:
        with open(args.from_json) as f:
            d = json.load(f)
    else:
        d = collect(args, root)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(base + ".json", "w") as f:
            json.dump(d, f, indent=1, sort_keys=True)
    text = markdown(d, args.build)
    if plot(d, base + ".png"):
        text += f"\n![time per item against the floor]({os.path.basename(base)}.png)\n"
    print(text)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
