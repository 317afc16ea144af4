# shared_dict and shared_list: lookup and insert against a std::map (and a std::vector) of separately
# named segments (bench_collections.cpp).
add_executable(bench_collections ${CMAKE_CURRENT_SOURCE_DIR}/bench_collections.cpp)
target_link_libraries(bench_collections PRIVATE ndshm::ndshm ndshm_warnings benchmark::benchmark)
