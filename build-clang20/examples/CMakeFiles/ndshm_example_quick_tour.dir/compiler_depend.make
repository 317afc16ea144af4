# Empty compiler generated dependencies file for ndshm_example_quick_tour.
# This may be replaced when dependencies are built.
