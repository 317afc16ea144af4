file(REMOVE_RECURSE
  "CMakeFiles/ndshm_object_tests.dir/file_test.cpp.o"
  "CMakeFiles/ndshm_object_tests.dir/file_test.cpp.o.d"
  "CMakeFiles/ndshm_object_tests.dir/main.cpp.o"
  "CMakeFiles/ndshm_object_tests.dir/main.cpp.o.d"
  "CMakeFiles/ndshm_object_tests.dir/object_test.cpp.o"
  "CMakeFiles/ndshm_object_tests.dir/object_test.cpp.o.d"
  "CMakeFiles/ndshm_object_tests.dir/store_test.cpp.o"
  "CMakeFiles/ndshm_object_tests.dir/store_test.cpp.o.d"
  "ndshm_object_tests"
  "ndshm_object_tests.pdb"
  "ndshm_object_tests_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_object_tests.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
