# Empty dependencies file for ndshm_example_object_files.
# This may be replaced when dependencies are built.
