add_test( [==[with NDSHM_ENABLE_ASSERT, operator() checks the index count and bounds]==] /work/main/build-clang20/tests/ndshm_checked_access_tests [==[with NDSHM_ENABLE_ASSERT\, operator() checks the index count and bounds]==]  )
set_tests_properties( [==[with NDSHM_ENABLE_ASSERT, operator() checks the index count and bounds]==] PROPERTIES WORKING_DIRECTORY /work/main/build-clang20/tests FIXTURES_REQUIRED ndshm_suite)
set( ndshm_checked_access_tests_TESTS [==[with NDSHM_ENABLE_ASSERT, operator() checks the index count and bounds]==])
