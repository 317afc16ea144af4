# Empty dependencies file for ndshm_example_array_lock.
# This may be replaced when dependencies are built.
