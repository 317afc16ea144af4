# Composite objects: share + load of 10,000 arrays of 1 KiB against 10,000 separate segments and
# against cereal's binary archive through a pipe (bench_objects.cpp).
add_executable(bench_objects ${CMAKE_CURRENT_SOURCE_DIR}/bench_objects.cpp)
target_link_libraries(bench_objects PRIVATE ndshm::ndshm ndshm_warnings benchmark::benchmark)
