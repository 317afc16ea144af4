file(REMOVE_RECURSE
  "CMakeFiles/ndshm_example_channel_stream.dir/channel_stream.cpp.o"
  "CMakeFiles/ndshm_example_channel_stream.dir/channel_stream.cpp.o.d"
  "ndshm_example_channel_stream"
  "ndshm_example_channel_stream.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ndshm_example_channel_stream.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
