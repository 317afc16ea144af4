# Empty dependencies file for ndshm_object_tests.
# This may be replaced when dependencies are built.
