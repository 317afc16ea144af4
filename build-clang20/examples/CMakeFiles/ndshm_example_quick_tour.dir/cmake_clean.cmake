file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_quick_tour.dir/quick_tour.cpp.o"
  "CMakeFiles/ndshm_example_quick_tour.dir/quick_tour.cpp.o.d"
  "ndshm_example_quick_tour"
  "ndshm_example_quick_tour.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_quick_tour.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
