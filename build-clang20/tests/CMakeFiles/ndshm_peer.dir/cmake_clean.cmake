file(REMOVE_RECURSE
  "CMakeFiles/ndshm_peer.dir/peer.cpp.o"
  "CMakeFiles/ndshm_peer.dir/peer.cpp.o.d"
  "ndshm_peer"
  "ndshm_peer.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_peer.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
