file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_numpy_interop.dir/numpy_interop.cpp.o"
  "CMakeFiles/ndshm_example_numpy_interop.dir/numpy_interop.cpp.o.d"
  "ndshm_example_numpy_interop"
  "ndshm_example_numpy_interop.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_numpy_interop.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
