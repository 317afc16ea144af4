# CMake generated Testfile for 
# Source directory: /work/main/tests/package
# Build directory: /work/main/build-clang20/tests/package
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test(package_find_package "/usr/bin/cmake" "-DSOURCE_DIR=/work/main/tests/package/consumer" "-DNDSHM_SOURCE_DIR=/work/main" "-DNDSHM_BINARY_DIR=/work/main/build-clang20" "-DNDSHM_VERSION=0.1.0" "-DCONFIG=Release" "-DGENERATOR=Unix Makefiles" "-DGENERATOR_PLATFORM=" "-DGENERATOR_TOOLSET=" "-DMAKE_PROGRAM=/usr/bin/gmake" "-DCXX_COMPILER=/usr/bin/clang++" "-DMODE=find_package" "-DWORK_DIR=/work/main/build-clang20/tests/package/find_package" "-P" "/work/main/tests/package/run_consumer.cmake")
set_tests_properties(package_find_package PROPERTIES  FIXTURES_REQUIRED "ndshm_suite" LABELS "package" _BACKTRACE_TRIPLES "/work/main/tests/package/CMakeLists.txt;19;add_test;/work/main/tests/package/CMakeLists.txt;0;")
add_test(package_add_subdirectory "/usr/bin/cmake" "-DSOURCE_DIR=/work/main/tests/package/consumer" "-DNDSHM_SOURCE_DIR=/work/main" "-DNDSHM_BINARY_DIR=/work/main/build-clang20" "-DNDSHM_VERSION=0.1.0" "-DCONFIG=Release" "-DGENERATOR=Unix Makefiles" "-DGENERATOR_PLATFORM=" "-DGENERATOR_TOOLSET=" "-DMAKE_PROGRAM=/usr/bin/gmake" "-DCXX_COMPILER=/usr/bin/clang++" "-DMODE=subdirectory" "-DWORK_DIR=/work/main/build-clang20/tests/package/add_subdirectory" "-P" "/work/main/tests/package/run_consumer.cmake")
set_tests_properties(package_add_subdirectory PROPERTIES  FIXTURES_REQUIRED "ndshm_suite" LABELS "package" _BACKTRACE_TRIPLES "/work/main/tests/package/CMakeLists.txt;26;add_test;/work/main/tests/package/CMakeLists.txt;0;")
