# ndshm_add_mpi_test(NAME <name> RANKS <n> NODES <k> COMMAND <program> [<arg>...]): a ctest test that
# runs <program> on <n> ranks through mpiexec with <k> emulated nodes per machine
# (NDSHM_MPI_EMULATED_NODES), labelled `mpi`, run alone (each rank is a process; the machine may have
# fewer cores than ranks) and inside the suite's check that nothing is left in /dev/shm.
# Included by tests/mpi.cmake and examples/mpi.cmake when NDSHM_WITH_MPI is on.
include_guard(GLOBAL)

if(NOT DEFINED NDSHM_MPIEXEC_FLAGS)
  # Open MPI refuses more ranks than cores, and running as root, unless told; other MPIs need nothing.
  set(flags "")
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE version ERROR_VARIABLE version
                  RESULT_VARIABLE rc)
  if(version MATCHES "Open MPI|OpenRTE")
    list(APPEND flags --oversubscribe)
    execute_process(COMMAND id -u OUTPUT_VARIABLE uid OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(uid STREQUAL "0")
      list(APPEND flags --allow-run-as-root)
    endif()
  endif()
  set(NDSHM_MPIEXEC_FLAGS "${flags}" CACHE STRING
      "Flags of mpiexec for ndshm's MPI tests (Open MPI: --oversubscribe, and --allow-run-as-root as root)")
endif()

# ndshm_mpi_test_properties(<test> <nodes>): the properties every MPI test has (see above).
function(ndshm_mpi_test_properties test nodes)
  set_tests_properties(${test} PROPERTIES LABELS mpi RUN_SERIAL TRUE TIMEOUT 300 FIXTURES_REQUIRED ndshm_suite
                       ENVIRONMENT "NDSHM_MPI_EMULATED_NODES=${nodes}")
endfunction()

function(ndshm_add_mpi_test)
  cmake_parse_arguments(arg "" "NAME;RANKS;NODES" "COMMAND" ${ARGN})
  add_test(NAME ${arg_NAME}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${arg_RANKS} ${NDSHM_MPIEXEC_FLAGS}
                   ${MPIEXEC_PREFLAGS} ${arg_COMMAND} ${MPIEXEC_POSTFLAGS})
  ndshm_mpi_test_properties(${arg_NAME} ${arg_NODES})
endfunction()
