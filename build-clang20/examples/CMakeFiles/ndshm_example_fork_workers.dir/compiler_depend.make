# Empty compiler generated dependencies file for ndshm_example_fork_workers.
# This may be replaced when dependencies are built.
