# Empty dependencies file for ndshm_process_tests.
# This may be replaced when dependencies are built.
