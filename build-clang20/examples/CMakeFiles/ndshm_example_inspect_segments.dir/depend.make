# Empty dependencies file for ndshm_example_inspect_segments.
# This may be replaced when dependencies are built.
