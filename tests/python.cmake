# The Python module's tests (tests/python/test_*.py), run by pytest with Python3_EXECUTABLE and the module of
# this build, one ctest test per file, inside the suite's check that nothing is left in /dev/shm. They talk
# to a C++ peer program (python_peer.cpp) and compare with the `ndshm` tool. Registered when the module is
# built (python/CMakeLists.txt) and pytest is installed (Debian: python3-pytest). Included by
# tests/CMakeLists.txt.
if(NOT TARGET ndshm_python OR NOT NDSHM_PYTHON_TESTABLE)
  return()
endif()
execute_process(COMMAND ${Python3_EXECUTABLE} -c "import pytest, numpy" RESULT_VARIABLE ndshm_no_pytest
                OUTPUT_QUIET ERROR_QUIET)
if(NOT ndshm_no_pytest EQUAL 0)
  message(STATUS "ndshm: ${Python3_EXECUTABLE} has no pytest or NumPy (Debian: python3-pytest, python3-numpy); "
                 "the Python module's tests are not registered")
  return()
endif()

add_executable(ndshm_python_peer python_peer.cpp)
target_link_libraries(ndshm_python_peer PRIVATE ndshm::ndshm ndshm_warnings)

set(ndshm_python_test_env ${NDSHM_PYTHON_ENV} "NDSHM_TEST_PEER=$<TARGET_FILE:ndshm_python_peer>")
if(NDSHM_BUILD_TOOLS)
  list(APPEND ndshm_python_test_env "NDSHM_TEST_TOOL=$<TARGET_FILE:ndshm_tool>")
endif()

file(GLOB ndshm_python_tests RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}/python ${CMAKE_CURRENT_SOURCE_DIR}/python/test_*.py)
list(SORT ndshm_python_tests)
foreach(file IN LISTS ndshm_python_tests)
  string(REGEX REPLACE "^test_(.*)\\.py$" "python_\\1" test ${file})
  add_test(NAME ${test}
           COMMAND ${Python3_EXECUTABLE} -m pytest -q -p no:cacheprovider --rootdir=${CMAKE_CURRENT_SOURCE_DIR}/python
                   ${CMAKE_CURRENT_SOURCE_DIR}/python/${file})
  set_tests_properties(${test} PROPERTIES ENVIRONMENT "${ndshm_python_test_env}" FIXTURES_REQUIRED ndshm_suite
                                          LABELS python)
endforeach()

# The Python benchmark (benchmarks/bench_python.py) on small sizes, once: it keeps working, and its table
# shows in the test log. Nothing is timed against a target here; `quickstart.sh bench` runs the full one.
add_test(NAME python_benchmark_quick
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/benchmarks/bench_python.py --quick)
set_tests_properties(python_benchmark_quick PROPERTIES ENVIRONMENT "${ndshm_python_test_env}"
                                                       FIXTURES_REQUIRED ndshm_suite LABELS python)
