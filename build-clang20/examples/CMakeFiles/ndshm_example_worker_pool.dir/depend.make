# Empty dependencies file for ndshm_example_worker_pool.
# This may be replaced when dependencies are built.
