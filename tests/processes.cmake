# Processes: the array queue, the fork pool, the per-array lock and the uninterruptible guard. Every
# multi-process test really forks and synchronises on pipes; each test case is its own ctest test, inside
# the suite's check that nothing is left in /dev/shm.
add_executable(ndshm_process_tests
  ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/queue_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/pool_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/map_reduce_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/lock_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/uninterruptible_test.cpp)
target_link_libraries(ndshm_process_tests PRIVATE ndshm::ndshm ndshm_warnings Catch2::Catch2)
catch_discover_tests(ndshm_process_tests PROPERTIES FIXTURES_REQUIRED ndshm_suite)
