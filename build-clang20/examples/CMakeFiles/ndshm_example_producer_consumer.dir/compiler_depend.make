# Empty compiler generated dependencies file for ndshm_example_producer_consumer.
# This may be replaced when dependencies are built.
