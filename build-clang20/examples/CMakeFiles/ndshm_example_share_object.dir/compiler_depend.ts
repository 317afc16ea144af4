# CMAKE generated file: DO NOT EDIT!
# Timestamp file for compiler generated dependencies management for ndshm_example_share_object.
