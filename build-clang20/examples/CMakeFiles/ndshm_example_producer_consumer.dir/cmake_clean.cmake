file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_producer_consumer.dir/producer_consumer.cpp.o"
  "CMakeFiles/ndshm_example_producer_consumer.dir/producer_consumer.cpp.o.d"
  "ndshm_example_producer_consumer"
  "ndshm_example_producer_consumer.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_producer_consumer.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
