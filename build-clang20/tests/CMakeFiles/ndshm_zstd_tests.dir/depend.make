# Empty dependencies file for ndshm_zstd_tests.
# This may be replaced when dependencies are built.
