# The loan/publish channel (include/ndshm/channel.hpp).
add_executable(ndshm_channel_tests main.cpp channel_test.cpp)
target_link_libraries(ndshm_channel_tests PRIVATE ndshm::ndshm ndshm_warnings Catch2::Catch2)
catch_discover_tests(ndshm_channel_tests PROPERTIES FIXTURES_REQUIRED ndshm_suite)
