# Empty dependencies file for bench_tools.
# This may be replaced when dependencies are built.
