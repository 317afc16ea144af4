file(REMOVE_RECURSE
  "CMakeFiles/bench_core.dir/bench_core.cpp.o"
  "CMakeFiles/bench_core.dir/bench_core.cpp.o.d"
  "bench_core"
  "bench_core.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/bench_core.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
