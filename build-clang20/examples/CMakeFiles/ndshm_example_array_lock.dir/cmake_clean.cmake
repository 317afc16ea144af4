file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_array_lock.dir/array_lock.cpp.o"
  "CMakeFiles/ndshm_example_array_lock.dir/array_lock.cpp.o.d"
  "ndshm_example_array_lock"
  "ndshm_example_array_lock.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_array_lock.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
