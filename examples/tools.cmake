# The tools area's example: inspecting, listing and garbage-collecting segments from C++
# (include/ndshm/inspect.hpp). Included by examples/CMakeLists.txt.
add_executable(ndshm_example_inspect_segments ${CMAKE_CURRENT_LIST_DIR}/inspect_segments.cpp)
target_link_libraries(ndshm_example_inspect_segments PRIVATE ndshm::ndshm ndshm_warnings)
add_test(NAME example_inspect_segments COMMAND ndshm_example_inspect_segments)
set_tests_properties(example_inspect_segments PROPERTIES FIXTURES_REQUIRED ndshm_suite)
