file(REMOVE_RECURSE
  "CMakeFiles/bench_tools.dir/bench_tools.cpp.o"
  "CMakeFiles/bench_tools.dir/bench_tools.cpp.o.d"
  "bench_tools"
  "bench_tools.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/bench_tools.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
