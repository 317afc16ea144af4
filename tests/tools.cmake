# Tests of the tools area: inspect.hpp, the `ndshm` command-line tool, crash recovery with killed
# processes, fault injection through the system-call table, liveness under descriptor shortage, names
# created again by other processes, sparse segments on a full tmpfs, a multi-process stress test and
# security checks. Included by tests/CMakeLists.txt.
set(ndshm_tools_test_sources
  ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/inspect_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/crash_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/fault_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/liveness_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/reuse_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/sparse_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/stress_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/security_test.cpp)
# tools/ is added after tests/, but target names in generator expressions resolve at generation time.
if(NDSHM_BUILD_TOOLS)
  list(APPEND ndshm_tools_test_sources ${CMAKE_CURRENT_SOURCE_DIR}/tool_test.cpp)
endif()

add_executable(ndshm_tools_tests ${ndshm_tools_test_sources})
target_link_libraries(ndshm_tools_tests PRIVATE ndshm::ndshm ndshm_warnings Catch2::Catch2)
target_compile_definitions(ndshm_tools_tests PRIVATE
  NDSHM_TEST_PYTHON="${Python3_EXECUTABLE}")
if(NDSHM_BUILD_TOOLS)
  target_compile_definitions(ndshm_tools_tests PRIVATE NDSHM_TEST_TOOL="$<TARGET_FILE:ndshm_tool>")
  add_dependencies(ndshm_tools_tests ndshm_tool)
endif()

catch_discover_tests(ndshm_tools_tests PROPERTIES FIXTURES_REQUIRED ndshm_suite)
