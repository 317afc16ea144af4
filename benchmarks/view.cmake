add_executable(bench_view bench_view.cpp)
target_link_libraries(bench_view PRIVATE ndshm::ndshm ndshm_warnings benchmark::benchmark)
