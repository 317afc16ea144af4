file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_fork_workers.dir/fork_workers.cpp.o"
  "CMakeFiles/ndshm_example_fork_workers.dir/fork_workers.cpp.o.d"
  "ndshm_example_fork_workers"
  "ndshm_example_fork_workers.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_fork_workers.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
