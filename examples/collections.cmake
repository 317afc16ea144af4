# shared_dict and shared_list: several processes filling one dict and one list, built and run as a
# test inside the suite's check that nothing is left in /dev/shm.
set(ndshm_collection_examples shared_collections)
foreach(example IN LISTS ndshm_collection_examples)
  add_executable(ndshm_example_${example} ${CMAKE_CURRENT_SOURCE_DIR}/${example}.cpp)
  target_link_libraries(ndshm_example_${example} PRIVATE ndshm::ndshm ndshm_warnings)
  add_test(NAME example_${example} COMMAND ndshm_example_${example})
  set_tests_properties(example_${example} PROPERTIES FIXTURES_REQUIRED ndshm_suite)
endforeach()
