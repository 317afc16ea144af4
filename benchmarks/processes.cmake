# Processes: pool dispatch overhead, pool map 1 vs 2 workers, 64 MiB queue handoff vs a pipe.
add_executable(bench_processes ${CMAKE_CURRENT_SOURCE_DIR}/bench_processes.cpp)
target_link_libraries(bench_processes PRIVATE ndshm::ndshm ndshm_warnings benchmark::benchmark)

# Map-reduce: fork_pool::map_reduce over 1 GiB beside the serial loop and 2 std::threads.
add_executable(bench_map_reduce ${CMAKE_CURRENT_SOURCE_DIR}/bench_map_reduce.cpp)
target_link_libraries(bench_map_reduce PRIVATE ndshm::ndshm ndshm_warnings benchmark::benchmark)
