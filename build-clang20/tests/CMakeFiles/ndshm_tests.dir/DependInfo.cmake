
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/tests/any_ndarray_test.cpp" "tests/CMakeFiles/ndshm_tests.dir/any_ndarray_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/any_ndarray_test.cpp.o.d"
  "/work/main/tests/bad_input_test.cpp" "tests/CMakeFiles/ndshm_tests.dir/bad_input_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/bad_input_test.cpp.o.d"
  "/work/main/tests/dtype_test.cpp" "tests/CMakeFiles/ndshm_tests.dir/dtype_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/dtype_test.cpp.o.d"
  "/work/main/tests/error_test.cpp" "tests/CMakeFiles/ndshm_tests.dir/error_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/error_test.cpp.o.d"
  "/work/main/tests/main.cpp" "tests/CMakeFiles/ndshm_tests.dir/main.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/main.cpp.o.d"
  "/work/main/tests/multiprocess_test.cpp" "tests/CMakeFiles/ndshm_tests.dir/multiprocess_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/multiprocess_test.cpp.o.d"
  "/work/main/tests/npy_test.cpp" "tests/CMakeFiles/ndshm_tests.dir/npy_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/npy_test.cpp.o.d"
  "/work/main/tests/numpy_test.cpp" "tests/CMakeFiles/ndshm_tests.dir/numpy_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/numpy_test.cpp.o.d"
  "/work/main/tests/segment_test.cpp" "tests/CMakeFiles/ndshm_tests.dir/segment_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/segment_test.cpp.o.d"
  "/work/main/tests/shared_ndarray_test.cpp" "tests/CMakeFiles/ndshm_tests.dir/shared_ndarray_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/shared_ndarray_test.cpp.o.d"
  "/work/main/tests/shared_tensor_test.cpp" "tests/CMakeFiles/ndshm_tests.dir/shared_tensor_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/shared_tensor_test.cpp.o.d"
  "/work/main/tests/view_test.cpp" "tests/CMakeFiles/ndshm_tests.dir/view_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_tests.dir/view_test.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
