file(REMOVE_RECURSE
  "CMakeFiles/bench_view.dir/bench_view.cpp.o"
  "CMakeFiles/bench_view.dir/bench_view.cpp.o.d"
  "bench_view"
  "bench_view.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/bench_view.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
