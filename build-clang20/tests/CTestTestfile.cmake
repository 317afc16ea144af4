# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build-clang20/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build-clang20/tests/ndshm_tests_include-b12d07c.cmake")
include("/work/main/build-clang20/tests/ndshm_checked_access_tests_include-b12d07c.cmake")
include("/work/main/build-clang20/tests/ndshm_object_tests_include-b12d07c.cmake")
include("/work/main/build-clang20/tests/ndshm_zstd_tests_include-b12d07c.cmake")
include("/work/main/build-clang20/tests/ndshm_process_tests_include-b12d07c.cmake")
include("/work/main/build-clang20/tests/ndshm_tools_tests_include-b12d07c.cmake")
include("/work/main/build-clang20/tests/ndshm_channel_tests_include-b12d07c.cmake")
add_test(shm_snapshot_before "/usr/bin/cmake" "-DMODE=before" "-DSTATE=/work/main/build-clang20/tests/shm_before.txt" "-P" "/work/main/tests/check_shm.cmake")
set_tests_properties(shm_snapshot_before PROPERTIES  FIXTURES_SETUP "ndshm_suite" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;43;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(shm_nothing_left_behind "/usr/bin/cmake" "-DMODE=after" "-DSTATE=/work/main/build-clang20/tests/shm_before.txt" "-P" "/work/main/tests/check_shm.cmake")
set_tests_properties(shm_nothing_left_behind PROPERTIES  FIXTURES_CLEANUP "ndshm_suite" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;47;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(object_not_serialisable_is_a_compile_error "/usr/bin/clang++" "-std=c++17" "-fsyntax-only" "-I/work/main/include" "-I/usr/include" "-I/usr/include" "-I/usr/include" "-I/usr/include" "-I/usr/include" "-I/usr/include" "/work/main/tests/objects_compile_fail.cpp")
set_tests_properties(object_not_serialisable_is_a_compile_error PROPERTIES  PASS_REGULAR_EXPRESSION "ndshm: cereal cannot serialise this type" _BACKTRACE_TRIPLES "/work/main/tests/objects.cmake;28;add_test;/work/main/tests/objects.cmake;0;;/work/main/tests/CMakeLists.txt;54;include;/work/main/tests/CMakeLists.txt;0;")
subdirs("package")
