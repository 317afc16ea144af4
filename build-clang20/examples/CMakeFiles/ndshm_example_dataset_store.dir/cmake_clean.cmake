file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_dataset_store.dir/dataset_store.cpp.o"
  "CMakeFiles/ndshm_example_dataset_store.dir/dataset_store.cpp.o.d"
  "ndshm_example_dataset_store"
  "ndshm_example_dataset_store.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_dataset_store.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
