# Empty compiler generated dependencies file for ndshm_example_numpy_interop.
# This may be replaced when dependencies are built.
