# Empty compiler generated dependencies file for bench_processes.
# This may be replaced when dependencies are built.
