file(REMOVE_RECURSE
  "CMakeFiles/ndshm_checked_access_tests.dir/checked_access_test.cpp.o"
  "CMakeFiles/ndshm_checked_access_tests.dir/checked_access_test.cpp.o.d"
  "CMakeFiles/ndshm_checked_access_tests.dir/main.cpp.o"
  "CMakeFiles/ndshm_checked_access_tests.dir/main.cpp.o.d"
  "ndshm_checked_access_tests"
  "ndshm_checked_access_tests.pdb"
  "ndshm_checked_access_tests_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_checked_access_tests.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
