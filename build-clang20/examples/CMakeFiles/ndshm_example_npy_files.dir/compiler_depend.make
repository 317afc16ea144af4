# Empty compiler generated dependencies file for ndshm_example_npy_files.
# This may be replaced when dependencies are built.
