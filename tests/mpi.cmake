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
endif()
