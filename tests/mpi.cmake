# Tests of ndshm/mpi.hpp, with -DNDSHM_WITH_MPI=ON: `ctest -L mpi` runs them. Each runs through mpiexec on
# 4 ranks split into 2 emulated nodes (NDSHM_MPI_EMULATED_NODES=2), so one machine has two node copies.
# Included by tests/CMakeLists.txt.
if(NDSHM_WITH_MPI)
  include(${CMAKE_CURRENT_SOURCE_DIR}/mpi_launch.cmake)

  add_executable(ndshm_mpi_tests ${CMAKE_CURRENT_SOURCE_DIR}/mpi_main.cpp ${CMAKE_CURRENT_SOURCE_DIR}/mpi_test.cpp)
  target_link_libraries(ndshm_mpi_tests PRIVATE ndshm::mpi ndshm_warnings Catch2::Catch2)
  # One mpiexec per area: a failure points at its area, and each stays short.
  foreach(area topology node_array transfer object store errors)
    ndshm_add_mpi_test(NAME mpi_${area} RANKS 4 NODES 2 COMMAND $<TARGET_FILE:ndshm_mpi_tests> "[${area}]")
  endforeach()

  # A rank dies: mpiexec aborts the job, and `ndshm gc` removes what it left (in a private directory).
  add_executable(ndshm_mpi_crash ${CMAKE_CURRENT_SOURCE_DIR}/mpi_crash.cpp)
  target_link_libraries(ndshm_mpi_crash PRIVATE ndshm::mpi ndshm_warnings)
  if(NDSHM_BUILD_TOOLS)
    add_test(NAME mpi_crash_then_gc
             COMMAND ${CMAKE_COMMAND} -DMPIEXEC=${MPIEXEC_EXECUTABLE}
                     "-DMPIEXEC_ARGS=${MPIEXEC_NUMPROC_FLAG};4;${NDSHM_MPIEXEC_FLAGS};${MPIEXEC_PREFLAGS}"
                     -DPROGRAM=$<TARGET_FILE:ndshm_mpi_crash> -DTOOL=$<TARGET_FILE:ndshm_tool>
                     -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/mpi_crash
                     -P ${CMAKE_CURRENT_SOURCE_DIR}/mpi_crash.cmake)
    ndshm_mpi_test_properties(mpi_crash_then_gc 2)
  endif()

  # mpi4py ranks read (and write) the node copies with NumPy, by name, in the same job as C++ ranks.
  execute_process(COMMAND ${Python3_EXECUTABLE} -c "import mpi4py, numpy" RESULT_VARIABLE no_mpi4py
                  OUTPUT_QUIET ERROR_QUIET)
  add_executable(ndshm_mpi_numpy ${CMAKE_CURRENT_SOURCE_DIR}/mpi_numpy.cpp)
  target_link_libraries(ndshm_mpi_numpy PRIVATE ndshm::mpi ndshm_warnings)
  if(no_mpi4py EQUAL 0)
    add_test(NAME mpi_numpy_readers
             COMMAND ${MPIEXEC_EXECUTABLE} ${NDSHM_MPIEXEC_FLAGS} ${MPIEXEC_PREFLAGS}
                     ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:ndshm_mpi_numpy> :
                     ${MPIEXEC_NUMPROC_FLAG} 2 ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/python/mpi_numpy.py)
    ndshm_mpi_test_properties(mpi_numpy_readers 2)
  else()
    message(STATUS "ndshm: ${Python3_EXECUTABLE} has no mpi4py (Debian: python3-mpi4py); mpi_numpy_readers is not run")
  endif()

  # The benchmark (benchmarks/bench_mpi.cpp), small: it runs, and every rank reads the right data.
  if(NOT TARGET ndshm_bench_mpi)
    add_executable(ndshm_bench_mpi ${PROJECT_SOURCE_DIR}/benchmarks/bench_mpi.cpp)
    target_link_libraries(ndshm_bench_mpi PRIVATE ndshm::mpi ndshm_warnings)
  endif()
  ndshm_add_mpi_test(NAME mpi_bench_small RANKS 4 NODES 2 COMMAND $<TARGET_FILE:ndshm_bench_mpi> --mib 8 --reps 1)

  # Everything `ctest -L mpi` runs (scripts/quickstart.sh mpi builds only this). examples/mpi.cmake adds
  # the example; the package test installs the build tree, the tool included.
  add_custom_target(ndshm_mpi_checks)
  add_dependencies(ndshm_mpi_checks ndshm_mpi_tests ndshm_mpi_crash ndshm_mpi_numpy ndshm_bench_mpi)
  if(TARGET ndshm_mpi_header_check)
    add_dependencies(ndshm_mpi_checks ndshm_mpi_header_check)
  endif()
  if(NDSHM_BUILD_TOOLS)
    add_dependencies(ndshm_mpi_checks ndshm_tool)
  endif()
  if(TARGET ndshm_python) # installed beside the headers, so the package test needs it built
    add_dependencies(ndshm_mpi_checks ndshm_python)
  endif()
endif()

# ndshm::mpi::pool (ndshm/mpi_pool.hpp): fork_pool's calls over the ranks, on 2 ranks (the only worker on
# the other node) and on 4 (one worker on the driver's node, two on the other), 2 emulated nodes each.
if(NDSHM_WITH_MPI)
  add_executable(ndshm_mpi_pool_tests ${CMAKE_CURRENT_SOURCE_DIR}/mpi_main.cpp
                                      ${CMAKE_CURRENT_SOURCE_DIR}/mpi_pool_test.cpp)
  target_link_libraries(ndshm_mpi_pool_tests PRIVATE ndshm::mpi ndshm_warnings Catch2::Catch2)
  foreach(ranks 2 4)
    ndshm_add_mpi_test(NAME mpi_pool_${ranks}_ranks RANKS ${ranks} NODES 2
                       COMMAND $<TARGET_FILE:ndshm_mpi_pool_tests> "[mpi_pool]")
  endforeach()
  add_dependencies(ndshm_mpi_checks ndshm_mpi_pool_tests)
endif()
