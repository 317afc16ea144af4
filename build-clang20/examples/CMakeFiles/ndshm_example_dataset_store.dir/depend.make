# Empty dependencies file for ndshm_example_dataset_store.
# This may be replaced when dependencies are built.
