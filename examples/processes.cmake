# Processes: the array queue pipeline, the fork pool, the per-array lock and the uninterruptible guard.
# Each example is built and run as a test, inside the suite's check that nothing is left in /dev/shm.
set(ndshm_process_examples pipeline queue_recycled worker_pool map_reduce array_lock uninterruptible)
foreach(example IN LISTS ndshm_process_examples)
  add_executable(ndshm_example_${example} ${CMAKE_CURRENT_SOURCE_DIR}/${example}.cpp)
  target_link_libraries(ndshm_example_${example} PRIVATE ndshm::ndshm ndshm_warnings)
  add_test(NAME example_${example} COMMAND ndshm_example_${example})
  set_tests_properties(example_${example} PROPERTIES FIXTURES_REQUIRED ndshm_suite)
endforeach()
