file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_inspect_segments.dir/inspect_segments.cpp.o"
  "CMakeFiles/ndshm_example_inspect_segments.dir/inspect_segments.cpp.o.d"
  "ndshm_example_inspect_segments"
  "ndshm_example_inspect_segments.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_inspect_segments.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
