# Empty compiler generated dependencies file for ndshm_checked_access_tests.
# This may be replaced when dependencies are built.
