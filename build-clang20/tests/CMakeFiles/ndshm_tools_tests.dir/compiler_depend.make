# Empty compiler generated dependencies file for ndshm_tools_tests.
# This may be replaced when dependencies are built.
