# Empty dependencies file for ndshm_example_share_object.
# This may be replaced when dependencies are built.
