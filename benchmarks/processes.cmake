# Processes: pool dispatch overhead, pool map 1 vs 2 workers, 64 MiB queue handoff vs a pipe.
add_executable(bench_processes ${CMAKE_CURRENT_SOURCE_DIR}/bench_processes.cpp)
target_link_libraries(bench_processes PRIVATE ndshm::ndshm ndshm_warnings benchmark::benchmark)
