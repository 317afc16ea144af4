#!/usr/bin/env python3
"""Runs ndshm's benchmarks and writes a Markdown report and a PNG plot.

    python3 scripts/bench_report.py BUILD_DIR [--out docs] [--min-time 0.3] [--repetitions 3]

BUILD_DIR is a Release build configured with -DNDSHM_BUILD_BENCHMARKS=ON (scripts/quickstart.sh bench
makes one). Every bench_* program found in BUILD_DIR/benchmarks runs once, in one session, with
Google Benchmark's JSON output; the report puts each ndshm row beside its baseline with the ratio.
Each benchmark runs --repetitions times, interleaved at random with the others of its program, and
the report gives the medians: on a shared VM one pass of a microsecond benchmark moves by 30 %.
The plot needs matplotlib (Debian: python3-matplotlib); without it only the Markdown is written.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

# name pattern -> (group, baseline benchmark name with {arg}, how to compare)
#   "time": ratio = this time / baseline time (lower is better)
#   "speedup": ratio = baseline time / this time (higher is better)
COMPARISONS = [
    (r"BM_attach_ndshm/(\d+)", "attach by name", "BM_attach_raw/{arg}", "time"),
    (r"BM_attach_ndshm_mapped/(\d+)", "attach by name, segment already mapped in this process",
     "BM_attach_raw/{arg}", "time"),
    (r"BM_create_cold_ndshm_from_array/(\d+)", "create from an array, cold pages", "BM_create_cold_raw_memcpy/{arg}",
     "speedup"),
    (r"BM_create_cold_ndshm_zeroed/(\d+)", "create zero-filled, cold pages", "BM_create_cold_raw_memcpy/{arg}",
     "speedup"),
    (r"BM_copy_warm_ndshm/(\d+)", "copy into a segment, warm pages", "BM_copy_warm_memcpy/{arg}", "speedup"),
    (r"BM_handoff_ndshm_create_attach/(\d+)", "handoff to a reader: create + attach (cold)",
     "BM_handoff_pipe/{arg}/real_time", "speedup"),
    (r"BM_handoff_channel/(\d+)", "handoff: channel, steady state (vs memcpy warm)",
     "BM_memcpy_warm/{arg}/real_time", "speedup"),
    (r"BM_handoff_channel/(\d+)", "handoff: channel, steady state (vs pipe)", "BM_handoff_pipe/{arg}/real_time",
     "speedup"),
    (r"BM_handoff_queue/(\d+)", "handoff: array queue, reader reads all (vs pipe)", "BM_handoff_pipe/{arg}/real_time",
     "speedup"),
    (r"BM_handoff_unix_socket/(\d+)", "handoff: Unix socket (vs pipe)", "BM_handoff_pipe/{arg}/real_time",
     "speedup"),
    (r"BM_handoff_cereal_pipe/(\d+)", "handoff: cereal through a pipe (vs pipe)", "BM_handoff_pipe/{arg}/real_time",
     "speedup"),
    (r"BM_view_assign_container/(\d)", "view(): assign a contiguous container (vs memcpy)",
     "BM_memcpy_64MiB_warm/{arg}", "speedup"),
    (r"BM_from_array_expression/(\d+)", "from_array of an xtensor expression, cold pages",
     "BM_from_array_raw_memcpy/{arg}", "speedup"),
]

# view() against xt::xarray: every BM_view_<op>/<order> beside BM_xarray_<op>/<order>.
VIEW_OPS = ["assign_container", "assign_expression", "noalias_assign_expression", "compound_scalar",
            "compound_expression", "noalias_compound_expression", "sum", "sum_axis0", "slice_assign",
            "slice_assign_noalias", "slice_assign_expression", "slice_compound"]
COMPARISONS += [(rf"BM_view_{op}/(\d)", f"view(): {op.replace('_', ' ')} (vs xt::xarray)",
                 f"BM_xarray_{op}/{{arg}}", "time") for op in VIEW_OPS]

# How to read a comparison's ratio.
READING = {"time": "ndshm's time / the baseline's (below 1: faster)",
           "speedup": "the baseline's time / ndshm's (above 1: faster)"}

# Element access, one index pair at a time: the handle's operator() and at() against xt::xarray's.
COMPARISONS += [(rf"BM_handle_element_{op}/(\d)", f"handle: {what} over every element (vs xt::xarray)",
                 f"BM_xarray_element_{op}/{{arg}}", "time") for op, what in (("call", "a(i, j)"), ("at", "a.at(i, j)"))]

# What the argument of a comparison's benchmarks means, where it is not a size in bytes.
ARG_LABELS = {"view()": {0: "64 MiB, C order", 1: "64 MiB, Fortran order"},
              "handle:": {0: "2048 x 4096 doubles, C order"}}


def human_bytes(n):
    n = int(n)
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


def human_time(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def to_ns(b):
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    return b["real_time"] * scale


def run(build, min_time, repetitions):
    bench_dir = os.path.join(build, "benchmarks")
    programs = sorted(p for p in os.listdir(bench_dir) if p.startswith("bench_") and
                      os.access(os.path.join(bench_dir, p), os.X_OK) and not p.endswith(".json"))
    if not programs:
        sys.exit(f"no bench_* programs in {bench_dir}: configure with -DNDSHM_BUILD_BENCHMARKS=ON and build")
    results, context = {}, None
    for p in programs:
        out = os.path.join(bench_dir, p + ".json")
        cmd = [os.path.join(bench_dir, p), f"--benchmark_min_time={min_time}", "--benchmark_format=console",
               f"--benchmark_out={out}", "--benchmark_out_format=json"]
        if repetitions > 1:
            cmd += [f"--benchmark_repetitions={repetitions}", "--benchmark_enable_random_interleaving=true",
                    "--benchmark_report_aggregates_only=true"]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        with open(out) as f:
            data = json.load(f)
        context = context or data["context"]
        for b in data["benchmarks"]:
            if repetitions > 1 and b.get("aggregate_name") == "median":
                results[b["run_name"]] = b
            elif repetitions <= 1 and b.get("run_type", "iteration") == "iteration":
                results[b["name"]] = b
    return results, context, programs


def table(results):
    rows = []
    for pattern, group, base_fmt, how in COMPARISONS:
        for name, b in results.items():
            m = re.fullmatch(pattern + r"(/.*)?", name)
            if not m:
                continue
            base = results.get(base_fmt.format(arg=m.group(1)))
            t = to_ns(b)
            ratio = ""
            if base:
                r = to_ns(base) / t if how == "speedup" else t / to_ns(base)
                ratio = f"{r:.2f}x"
            bps = b.get("bytes_per_second")
            rows.append((group, int(m.group(1)), human_time(t), f"{bps / 1e9:.2f} GB/s" if bps else "",
                         base["name"].split("/")[0] if base else "", human_time(to_ns(base)) if base else "",
                         ratio, READING[how]))
    rows.sort(key=lambda r: (r[0], r[1]))
    lines = ["| comparison | size | ndshm | throughput | baseline | baseline time | ratio | ratio is |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for g, size, t, bps, base, bt, ratio, reading in rows:
        labels = next((v for k, v in ARG_LABELS.items() if g.startswith(k)), None)
        what = labels.get(size, str(size)) if labels else human_bytes(size)
        lines.append(f"| {g} | {what} | {t} | {bps} | {base} | {bt} | {ratio} | {reading} |")
    return "\n".join(lines)


def others(results):
    """Rows of benchmarks that no comparison covers (each program's own comparisons, counters)."""
    covered = set()
    for pattern, _, base_fmt, _ in COMPARISONS:
        for name in results:
            m = re.fullmatch(pattern + r"(/.*)?", name)
            if m:
                covered.add(name)
                covered.add(base_fmt.format(arg=m.group(1)))
    lines = ["| benchmark | time | throughput | counters |", "| --- | --- | --- | --- |"]
    skip = {"name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
            "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit", "bytes_per_second",
            "label", "aggregate_name", "aggregate_unit", "error_occurred", "error_message"}
    for name, b in results.items():
        if name in covered:
            continue
        counters = ", ".join(f"{k}={v:.4g}" for k, v in b.items() if k not in skip and isinstance(v, (int, float)))
        bps = b.get("bytes_per_second")
        lines.append(f"| {name} | {human_time(to_ns(b))} | {f'{bps / 1e9:.2f} GB/s' if bps else ''} | {counters} |")
    return "\n".join(lines)


def compile_times(root, rounds=5):
    """Seconds (user + system, best of `rounds`, interleaved) to compile each benchmarks/compile/*.cpp
    with g++ -std=c++17 -O2, the ndshm ones also with NDSHM_SEPARATE_COMPILATION (the library's own
    translation unit, compiled once, not counted), and the ratio of each to hello_xarray.cpp."""
    import resource
    sources = sorted(f for f in os.listdir(os.path.join(root, "benchmarks", "compile")) if f.endswith(".cpp"))
    variants = [(f, f, []) for f in sources]
    variants += [(f + ", separate compilation", f, ["-DNDSHM_SEPARATE_COMPILATION"])
                 for f in sources if f != "hello_xarray.cpp"]
    best = {label: float("inf") for label, _, _ in variants}
    for _ in range(rounds):
        for label, f, flags in variants:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(["g++", "-std=c++17", "-O2", *flags, "-I", os.path.join(root, "include"), "-c",
                            os.path.join(root, "benchmarks", "compile", f), "-o", os.devnull], check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            best[label] = min(best[label], t)
    base = best.get("hello_xarray.cpp")
    lines = ["| translation unit | compile time (g++ -O2, best of %d) | ratio to hello_xarray.cpp |" % rounds,
             "| --- | --- | --- |"]
    for label, _, _ in variants:
        ratio = f"{best[label] / base:.2f}x" if base else ""
        lines.append(f"| benchmarks/compile/{label} | {best[label]:.2f} s | {ratio} |")
    return "\n".join(lines)


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (apt-get install python3-matplotlib): no plot", file=sys.stderr)
        return False
    # bench_perf's streams: BM_stream/method:M/bytes:B/real_time, M as in bench_perf.cpp's `method`.
    series = {0: "one process, no IPC (the floor)", 1: "pipe", 2: "Unix socket", 3: "ndshm channel",
              4: "ndshm queue, fresh segments", 5: "ndshm queue, recycled segments"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for method, label in series.items():
        pts = []
        for n, b in results.items():
            m = re.fullmatch(rf"BM_stream/method:{method}/bytes:(\d+)(/.*)?", n)
            if m and "per_item" in b:
                pts.append((int(m.group(1)), b))
        if not pts:
            continue
        pts.sort(key=lambda p: p[0])
        xs = [p[0] for p in pts]
        ax1.plot(xs, [p[1].get("bytes_per_second", 0) / 1e9 for p in pts], marker="o", label=label)
        ax2.plot(xs, [p[1]["per_item"] * 1e6 for p in pts], marker="o", label=label)
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("array size (bytes)")
        ax.grid(True, which="both", alpha=0.3)
    ax1.set_yscale("log")
    ax1.set_ylabel("throughput (GB/s), the reader reads every byte")
    ax2.set_yscale("log")
    ax2.set_ylabel("time per item (µs)")
    ax1.set_title("A stream of items to another process (bench_perf)")
    ax2.set_title("Time per item")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--out", default="docs")
    ap.add_argument("--min-time", default="0.3")
    ap.add_argument("--repetitions", type=int, default=3)
    args = ap.parse_args()
    results, ctx, programs = run(args.build, args.min_time, args.repetitions)
    os.makedirs(args.out, exist_ok=True)
    png = os.path.join(args.out, "benchmarks.png")
    have_plot = plot(results, png)
    md = os.path.join(args.out, "benchmarks.md")
    with open(md, "w") as f:
        f.write("# ndshm benchmark report\n\n")
        f.write(f"Made by `python3 scripts/bench_report.py {args.build} --min-time {args.min_time} "
                f"--repetitions {args.repetitions}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                f"running {', '.join(programs)}: "
                + (f"the median of {args.repetitions} repetitions of each benchmark, interleaved at random."
                   if args.repetitions > 1 else "each benchmark once.") + "\n\n")
        f.write(f"Machine: {ctx.get('num_cpus')} CPUs at {ctx.get('mhz_per_cpu')} MHz, {platform.platform()}, "
                "\n\n")
        if have_plot:
            f.write("![handoff throughput and latency](benchmarks.png)\n\n")
        f.write("## ndshm beside its baselines\n\n" + table(results) + "\n\n")
        f.write("## Other measurements\n\n" + others(results) + "\n\n")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        f.write("## Compile time of a hello-world\n\n" + compile_times(root) + "\n")
    print(f"wrote {md}" + (f" and {png}" if have_plot else ""))


if __name__ == "__main__":
    main()
