
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/tests/lock_test.cpp" "tests/CMakeFiles/ndshm_process_tests.dir/lock_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_process_tests.dir/lock_test.cpp.o.d"
  "/work/main/tests/main.cpp" "tests/CMakeFiles/ndshm_process_tests.dir/main.cpp.o" "gcc" "tests/CMakeFiles/ndshm_process_tests.dir/main.cpp.o.d"
  "/work/main/tests/pool_test.cpp" "tests/CMakeFiles/ndshm_process_tests.dir/pool_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_process_tests.dir/pool_test.cpp.o.d"
  "/work/main/tests/queue_test.cpp" "tests/CMakeFiles/ndshm_process_tests.dir/queue_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_process_tests.dir/queue_test.cpp.o.d"
  "/work/main/tests/uninterruptible_test.cpp" "tests/CMakeFiles/ndshm_process_tests.dir/uninterruptible_test.cpp.o" "gcc" "tests/CMakeFiles/ndshm_process_tests.dir/uninterruptible_test.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
