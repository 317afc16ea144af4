# bench_mpi.cpp (with -DNDSHM_WITH_MPI=ON): one copy per node against one copy per rank, run through mpiexec
# (see the file). A plain MPI program, not a Google Benchmark one, so scripts/bench_report.py does not run
# it (its name does not start with bench_). tests/mpi.cmake builds it too, and runs it small as a test.
if(NDSHM_WITH_MPI AND NOT TARGET ndshm_bench_mpi)
  add_executable(ndshm_bench_mpi ${CMAKE_CURRENT_SOURCE_DIR}/bench_mpi.cpp)
  target_link_libraries(ndshm_bench_mpi PRIVATE ndshm::mpi ndshm_warnings)
endif()
