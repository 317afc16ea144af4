file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_object_files.dir/object_files.cpp.o"
  "CMakeFiles/ndshm_example_object_files.dir/object_files.cpp.o.d"
  "ndshm_example_object_files"
  "ndshm_example_object_files.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_object_files.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
