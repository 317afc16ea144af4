file(REMOVE_RECURSE
  "CMakeFiles/bench_processes.dir/bench_processes.cpp.o"
  "CMakeFiles/bench_processes.dir/bench_processes.cpp.o.d"
  "bench_processes"
  "bench_processes.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/bench_processes.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
