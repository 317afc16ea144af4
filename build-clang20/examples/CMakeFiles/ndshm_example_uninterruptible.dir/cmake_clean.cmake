file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_uninterruptible.dir/uninterruptible.cpp.o"
  "CMakeFiles/ndshm_example_uninterruptible.dir/uninterruptible.cpp.o.d"
  "ndshm_example_uninterruptible"
  "ndshm_example_uninterruptible.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_uninterruptible.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
