file(REMOVE_RECURSE
  "CMakeFiles/ndshm_zstd_tests.dir/main.cpp.o"
  "CMakeFiles/ndshm_zstd_tests.dir/main.cpp.o.d"
  "CMakeFiles/ndshm_zstd_tests.dir/zstd_test.cpp.o"
  "CMakeFiles/ndshm_zstd_tests.dir/zstd_test.cpp.o.d"
  "ndshm_zstd_tests"
  "ndshm_zstd_tests.pdb"
  "ndshm_zstd_tests_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_zstd_tests.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
