file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_worker_pool.dir/worker_pool.cpp.o"
  "CMakeFiles/ndshm_example_worker_pool.dir/worker_pool.cpp.o.d"
  "ndshm_example_worker_pool"
  "ndshm_example_worker_pool.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_worker_pool.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
