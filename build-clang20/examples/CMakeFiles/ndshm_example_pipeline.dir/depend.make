# Empty dependencies file for ndshm_example_pipeline.
# This may be replaced when dependencies are built.
