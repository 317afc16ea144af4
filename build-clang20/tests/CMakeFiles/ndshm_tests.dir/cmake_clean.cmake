file(REMOVE_RECURSE
  "CMakeFiles/ndshm_tests.dir/any_ndarray_test.cpp.o"
  "CMakeFiles/ndshm_tests.dir/any_ndarray_test.cpp.o.d"
  "CMakeFiles/ndshm_tests.dir/bad_input_test.cpp.o"
  "CMakeFiles/ndshm_tests.dir/bad_input_test.cpp.o.d"
  "CMakeFiles/ndshm_tests.dir/dtype_test.cpp.o"
  "CMakeFiles/ndshm_tests.dir/dtype_test.cpp.o.d"
  "CMakeFiles/ndshm_tests.dir/error_test.cpp.o"
  "CMakeFiles/ndshm_tests.dir/error_test.cpp.o.d"
  "CMakeFiles/ndshm_tests.dir/main.cpp.o"
  "CMakeFiles/ndshm_tests.dir/main.cpp.o.d"
  "CMakeFiles/ndshm_tests.dir/multiprocess_test.cpp.o"
  "CMakeFiles/ndshm_tests.dir/multiprocess_test.cpp.o.d"
  "CMakeFiles/ndshm_tests.dir/npy_test.cpp.o"
  "CMakeFiles/ndshm_tests.dir/npy_test.cpp.o.d"
  "CMakeFiles/ndshm_tests.dir/numpy_test.cpp.o"
  "CMakeFiles/ndshm_tests.dir/numpy_test.cpp.o.d"
  "CMakeFiles/ndshm_tests.dir/segment_test.cpp.o"
  "CMakeFiles/ndshm_tests.dir/segment_test.cpp.o.d"
  "CMakeFiles/ndshm_tests.dir/shared_ndarray_test.cpp.o"
  "CMakeFiles/ndshm_tests.dir/shared_ndarray_test.cpp.o.d"
  "CMakeFiles/ndshm_tests.dir/shared_tensor_test.cpp.o"
  "CMakeFiles/ndshm_tests.dir/shared_tensor_test.cpp.o.d"
  "CMakeFiles/ndshm_tests.dir/view_test.cpp.o"
  "CMakeFiles/ndshm_tests.dir/view_test.cpp.o.d"
  "ndshm_tests"
  "ndshm_tests.pdb"
  "ndshm_tests_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_tests.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
