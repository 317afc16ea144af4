# Empty dependencies file for ndshm_example_uninterruptible.
# This may be replaced when dependencies are built.
