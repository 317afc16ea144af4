add_executable(bench_perf bench_perf.cpp)
target_link_libraries(bench_perf PRIVATE ndshm::ndshm ndshm_warnings benchmark::benchmark)
