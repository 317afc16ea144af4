# Empty dependencies file for bench_perf.
# This may be replaced when dependencies are built.
