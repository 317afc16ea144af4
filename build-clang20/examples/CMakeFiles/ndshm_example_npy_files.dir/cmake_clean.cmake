file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_npy_files.dir/npy_files.cpp.o"
  "CMakeFiles/ndshm_example_npy_files.dir/npy_files.cpp.o.d"
  "ndshm_example_npy_files"
  "ndshm_example_npy_files.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_npy_files.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
