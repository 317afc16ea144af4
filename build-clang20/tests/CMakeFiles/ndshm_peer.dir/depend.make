# Empty dependencies file for ndshm_peer.
# This may be replaced when dependencies are built.
