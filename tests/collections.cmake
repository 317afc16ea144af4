# Tests of shared_dict (dict.hpp) and shared_list (list.hpp): their API, lifetime and gc, several
# processes changing and reading one container, writers killed in the middle of a change, damaged
# tables, and inspect and the ndshm tool on them. Included by tests/CMakeLists.txt.
set(ndshm_collection_test_sources
  ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/dict_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/list_test.cpp)
add_executable(ndshm_collection_tests ${ndshm_collection_test_sources})
target_link_libraries(ndshm_collection_tests PRIVATE ndshm::ndshm ndshm_warnings Catch2::Catch2)
target_compile_definitions(ndshm_collection_tests PRIVATE NDSHM_TEST_PYTHON="${Python3_EXECUTABLE}")
# tools/ is added after tests/, but target names in generator expressions resolve at generation time.
if(NDSHM_BUILD_TOOLS)
  target_compile_definitions(ndshm_collection_tests PRIVATE NDSHM_TEST_TOOL="$<TARGET_FILE:ndshm_tool>")
  add_dependencies(ndshm_collection_tests ndshm_tool)
endif()
catch_discover_tests(ndshm_collection_tests PROPERTIES FIXTURES_REQUIRED ndshm_suite)
