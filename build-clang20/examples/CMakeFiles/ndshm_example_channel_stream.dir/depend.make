# Empty dependencies file for ndshm_example_channel_stream.
# This may be replaced when dependencies are built.
