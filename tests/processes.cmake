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

# A fork_pool task given as a lambda that captures must not compile, and the message must say why.
add_test(NAME pool_capturing_lambda_is_a_compile_error
         COMMAND ${CMAKE_CXX_COMPILER} -std=c++17 -fsyntax-only
                 "-I$<JOIN:$<TARGET_PROPERTY:ndshm,INTERFACE_INCLUDE_DIRECTORIES>,;-I>"
                 "-I$<JOIN:$<TARGET_PROPERTY:xtensor,INTERFACE_INCLUDE_DIRECTORIES>,;-I>"
                 ${CMAKE_CURRENT_SOURCE_DIR}/pool_lambda_compile_fail.cpp
         COMMAND_EXPAND_LISTS)
set_tests_properties(pool_capturing_lambda_is_a_compile_error PROPERTIES
  PASS_REGULAR_EXPRESSION "this lambda captures variables, but a task runs in another process")
