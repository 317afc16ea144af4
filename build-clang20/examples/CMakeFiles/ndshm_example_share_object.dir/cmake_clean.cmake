file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_share_object.dir/share_object.cpp.o"
  "CMakeFiles/ndshm_example_share_object.dir/share_object.cpp.o.d"
  "ndshm_example_share_object"
  "ndshm_example_share_object.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_share_object.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
