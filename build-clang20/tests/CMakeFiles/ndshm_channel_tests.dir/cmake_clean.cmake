file(REMOVE_RECURSE
  "CMakeFiles/ndshm_channel_tests.dir/channel_test.cpp.o"
  "CMakeFiles/ndshm_channel_tests.dir/channel_test.cpp.o.d"
  "CMakeFiles/ndshm_channel_tests.dir/main.cpp.o"
  "CMakeFiles/ndshm_channel_tests.dir/main.cpp.o.d"
  "ndshm_channel_tests"
  "ndshm_channel_tests.pdb"
  "ndshm_channel_tests_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_channel_tests.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
