file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_pipeline.dir/pipeline.cpp.o"
  "CMakeFiles/ndshm_example_pipeline.dir/pipeline.cpp.o.d"
  "ndshm_example_pipeline"
  "ndshm_example_pipeline.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_pipeline.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
