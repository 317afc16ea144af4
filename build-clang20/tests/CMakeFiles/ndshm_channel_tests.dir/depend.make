# Empty dependencies file for ndshm_channel_tests.
# This may be replaced when dependencies are built.
