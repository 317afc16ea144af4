file(REMOVE_RECURSE
  "CMakeFiles/bench_objects.dir/bench_objects.cpp.o"
  "CMakeFiles/bench_objects.dir/bench_objects.cpp.o.d"
  "bench_objects"
  "bench_objects.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/bench_objects.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
