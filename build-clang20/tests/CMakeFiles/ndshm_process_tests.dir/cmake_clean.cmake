file(REMOVE_RECURSE
  "CMakeFiles/ndshm_process_tests.dir/lock_test.cpp.o"
  "CMakeFiles/ndshm_process_tests.dir/lock_test.cpp.o.d"
  "CMakeFiles/ndshm_process_tests.dir/main.cpp.o"
  "CMakeFiles/ndshm_process_tests.dir/main.cpp.o.d"
  "CMakeFiles/ndshm_process_tests.dir/pool_test.cpp.o"
  "CMakeFiles/ndshm_process_tests.dir/pool_test.cpp.o.d"
  "CMakeFiles/ndshm_process_tests.dir/queue_test.cpp.o"
  "CMakeFiles/ndshm_process_tests.dir/queue_test.cpp.o.d"
  "CMakeFiles/ndshm_process_tests.dir/uninterruptible_test.cpp.o"
  "CMakeFiles/ndshm_process_tests.dir/uninterruptible_test.cpp.o.d"
  "ndshm_process_tests"
  "ndshm_process_tests.pdb"
  "ndshm_process_tests_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_process_tests.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
