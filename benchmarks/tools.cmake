# The tools area: listing and inspecting segments (inspect.hpp, the ndshm tool) against a raw scan
# of the same directory (bench_tools.cpp).
add_executable(bench_tools ${CMAKE_CURRENT_SOURCE_DIR}/bench_tools.cpp)
target_link_libraries(bench_tools PRIVATE ndshm::ndshm ndshm_warnings benchmark::benchmark)
