# Empty compiler generated dependencies file for ndshm_tool.
# This may be replaced when dependencies are built.
