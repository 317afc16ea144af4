file(REMOVE_RECURSE
  "CMakeFiles/ndshm_tool.dir/ndshm.cpp.o"
  "CMakeFiles/ndshm_tool.dir/ndshm.cpp.o.d"
  "ndshm"
  "ndshm.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_tool.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
