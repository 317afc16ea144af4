add_executable(bench_core bench_core.cpp)
target_link_libraries(bench_core PRIVATE ndshm::ndshm ndshm_warnings benchmark::benchmark)
