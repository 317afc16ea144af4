# Empty dependencies file for ndshm_tests.
# This may be replaced when dependencies are built.
