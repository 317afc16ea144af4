# Examples of composite objects, files and the store, one concept each, each run as a test.
# object_files also shows zstd compression, so it alone links zstd (Debian: libzstd-dev).
set(ndshm_objects_examples share_object npy_files dataset_store)
find_package(zstd QUIET)
if(TARGET zstd::libzstd_shared)
  list(APPEND ndshm_objects_examples object_files)
else()
  message(STATUS "ndshm: zstd not found (Debian: libzstd-dev); the object_files example is not built")
endif()

foreach(example IN LISTS ndshm_objects_examples)
  add_executable(ndshm_example_${example} ${CMAKE_CURRENT_SOURCE_DIR}/${example}.cpp)
  target_link_libraries(ndshm_example_${example} PRIVATE ndshm::ndshm ndshm_warnings)
  add_test(NAME example_${example} COMMAND ndshm_example_${example})
  set_tests_properties(example_${example} PROPERTIES FIXTURES_REQUIRED ndshm_suite)
endforeach()
if(TARGET ndshm_example_object_files)
  target_link_libraries(ndshm_example_object_files PRIVATE zstd::libzstd_shared)
endif()

# The sources whose [readme] parts the README quotes (for the readme_snippets check).
set(ndshm_objects_example_sources "")
foreach(example IN LISTS ndshm_objects_examples)
  list(APPEND ndshm_objects_example_sources ${CMAKE_CURRENT_SOURCE_DIR}/${example}.cpp)
endforeach()
