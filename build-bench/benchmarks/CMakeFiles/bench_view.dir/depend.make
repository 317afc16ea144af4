# Empty dependencies file for bench_view.
# This may be replaced when dependencies are built.
