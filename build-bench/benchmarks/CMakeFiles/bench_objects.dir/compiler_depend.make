# Empty compiler generated dependencies file for bench_objects.
# This may be replaced when dependencies are built.
