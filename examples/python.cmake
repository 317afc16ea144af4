# The Python module's examples, run as tests when the module is built (python/CMakeLists.txt):
# python_tour.py in one Python process, and python_stream.cpp, a C++ producer whose Python consumer is
# python_stream.py. Included by examples/CMakeLists.txt.
if(NOT TARGET ndshm_python OR NOT NDSHM_PYTHON_TESTABLE)
  return()
endif()

add_executable(ndshm_example_python_stream ${CMAKE_CURRENT_LIST_DIR}/python_stream.cpp)
target_link_libraries(ndshm_example_python_stream PRIVATE ndshm::ndshm ndshm_warnings)
target_compile_definitions(ndshm_example_python_stream PRIVATE
  NDSHM_EXAMPLE_PYTHON="${Python3_EXECUTABLE}"
  NDSHM_EXAMPLE_SCRIPT="${CMAKE_CURRENT_LIST_DIR}/python_stream.py"
  NDSHM_EXAMPLE_PYTHONPATH="$<TARGET_FILE_DIR:ndshm_python>")
add_dependencies(ndshm_example_python_stream ndshm_python)
add_test(NAME example_python_stream COMMAND ndshm_example_python_stream)

add_test(NAME example_python_tour COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/python_tour.py)
set_tests_properties(example_python_stream example_python_tour PROPERTIES ENVIRONMENT "${NDSHM_PYTHON_ENV}"
                                                                     FIXTURES_REQUIRED ndshm_suite)
