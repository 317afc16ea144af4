file(REMOVE_RECURSE
  "CMakeFiles/ndshm_tools_tests.dir/crash_test.cpp.o"
  "CMakeFiles/ndshm_tools_tests.dir/crash_test.cpp.o.d"
  "CMakeFiles/ndshm_tools_tests.dir/fault_test.cpp.o"
  "CMakeFiles/ndshm_tools_tests.dir/fault_test.cpp.o.d"
  "CMakeFiles/ndshm_tools_tests.dir/inspect_test.cpp.o"
  "CMakeFiles/ndshm_tools_tests.dir/inspect_test.cpp.o.d"
  "CMakeFiles/ndshm_tools_tests.dir/main.cpp.o"
  "CMakeFiles/ndshm_tools_tests.dir/main.cpp.o.d"
  "CMakeFiles/ndshm_tools_tests.dir/security_test.cpp.o"
  "CMakeFiles/ndshm_tools_tests.dir/security_test.cpp.o.d"
  "CMakeFiles/ndshm_tools_tests.dir/stress_test.cpp.o"
  "CMakeFiles/ndshm_tools_tests.dir/stress_test.cpp.o.d"
  "CMakeFiles/ndshm_tools_tests.dir/tool_test.cpp.o"
  "CMakeFiles/ndshm_tools_tests.dir/tool_test.cpp.o.d"
  "ndshm_tools_tests"
  "ndshm_tools_tests.pdb"
  "ndshm_tools_tests_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_tools_tests.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
