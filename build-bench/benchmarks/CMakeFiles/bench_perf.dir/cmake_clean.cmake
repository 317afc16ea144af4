file(REMOVE_RECURSE
  "CMakeFiles/bench_perf.dir/bench_perf.cpp.o"
  "CMakeFiles/bench_perf.dir/bench_perf.cpp.o.d"
  "bench_perf"
  "bench_perf.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/bench_perf.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
