# examples/mpi_dataset.cpp (with -DNDSHM_WITH_MPI=ON): a dataset loaded once per node, run as a test through
# mpiexec on 4 ranks with 2 emulated nodes. Included by examples/CMakeLists.txt.
if(NDSHM_WITH_MPI)
  include(${PROJECT_SOURCE_DIR}/tests/mpi_launch.cmake)
  add_executable(ndshm_example_mpi_dataset ${CMAKE_CURRENT_SOURCE_DIR}/mpi_dataset.cpp)
  target_link_libraries(ndshm_example_mpi_dataset PRIVATE ndshm::mpi ndshm_warnings)
  ndshm_add_mpi_test(NAME example_mpi_dataset RANKS 4 NODES 2 COMMAND $<TARGET_FILE:ndshm_example_mpi_dataset>)
  if(TARGET ndshm_mpi_checks)
    add_dependencies(ndshm_mpi_checks ndshm_example_mpi_dataset)
  endif()
endif()

# examples/mpi_pool.cpp: one analysis run with a fork_pool and with an ndshm::mpi::pool (4 ranks, 2 emulated
# nodes: one worker on the driver's node, two on the other).
if(NDSHM_WITH_MPI)
  add_executable(ndshm_example_mpi_pool ${CMAKE_CURRENT_SOURCE_DIR}/mpi_pool.cpp)
  target_link_libraries(ndshm_example_mpi_pool PRIVATE ndshm::mpi ndshm_warnings)
  ndshm_add_mpi_test(NAME example_mpi_pool RANKS 4 NODES 2 COMMAND $<TARGET_FILE:ndshm_example_mpi_pool>)
  if(TARGET ndshm_mpi_checks)
    add_dependencies(ndshm_mpi_checks ndshm_example_mpi_pool)
  endif()
endif()
