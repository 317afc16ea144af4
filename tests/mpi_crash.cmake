# A crashed MPI job leaves ordinary segments of dead creators, which `ndshm gc` removes. Runs
# ndshm_mpi_crash (tests/mpi_crash.cpp) through mpiexec with NDSHM_DIR set to a private directory, so
# that gc there cannot touch the segments of anything else running on the machine:
#
#   cmake -DMPIEXEC=<mpiexec> "-DMPIEXEC_ARGS=<flags, -n 4>" -DPROGRAM=<ndshm_mpi_crash> -DTOOL=<ndshm>
#         -DWORK_DIR=<scratch dir> -P mpi_crash.cmake
cmake_minimum_required(VERSION 3.16)

foreach(var MPIEXEC PROGRAM TOOL WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "mpi_crash.cmake: pass -D${var}=...")
  endif()
endforeach()

if(NOT EXISTS ${TOOL})
  message(FATAL_ERROR "${TOOL} is not built: build the ndshm_tool target (or ndshm_mpi_checks)")
endif()

set(shm ${WORK_DIR}/shm)
set(store ${WORK_DIR}/store)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${shm} ${store})

execute_process(COMMAND ${CMAKE_COMMAND} -E env NDSHM_DIR=${shm} NDSHM_MPI_EMULATED_NODES=2
                        ${MPIEXEC} ${MPIEXEC_ARGS} ${PROGRAM} ${store}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message(STATUS "mpiexec exited with ${rc}:\n${out}")
if(rc EQUAL 0)
  message(FATAL_ERROR "the job should have been aborted when rank 3 died")
endif()

# mpiexec may return before every rank it aborted has ended: wait for each (no sleep: on a pidfd).
string(REGEX MATCHALL "pid [0-9]+" pids "${out}")
string(REPLACE "pid " "" pids "${pids}")
list(LENGTH pids nranks)
if(NOT nranks EQUAL 4)
  message(FATAL_ERROR "expected 4 ranks to print their pid before rank 3 died, got ${nranks}")
endif()
execute_process(COMMAND ${PROGRAM} --wait ${pids} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "could not wait for the ranks ${pids} to end")
endif()

# Two node arrays, two node objects, and the store's array (one per machine: both emulated nodes run here).
file(GLOB left RELATIVE ${shm} ${shm}/ndshm_*)
list(LENGTH left n)
if(NOT n EQUAL 5)
  message(FATAL_ERROR "expected 5 segments left by the crashed job in ${shm}, found ${n}: ${left}")
endif()

execute_process(COMMAND ${TOOL} --dir ${shm} ls RESULT_VARIABLE rc OUTPUT_VARIABLE listing ERROR_VARIABLE listing)
message(STATUS "ndshm ls:\n${listing}")
string(REGEX MATCHALL "dead" dead "${listing}")
list(LENGTH dead ndead)
if(NOT rc EQUAL 0 OR NOT ndead EQUAL 5)
  message(FATAL_ERROR "ndshm ls (exit ${rc}) should list 5 segments whose creator is dead")
endif()

execute_process(COMMAND ${TOOL} --dir ${shm} gc RESULT_VARIABLE rc OUTPUT_VARIABLE removed ERROR_VARIABLE removed)
message(STATUS "ndshm gc:\n${removed}")
file(GLOB after RELATIVE ${shm} ${shm}/*)
if(NOT rc EQUAL 0 OR after)
  message(FATAL_ERROR "ndshm gc (exit ${rc}) left: ${after}")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
message(STATUS "the crashed job's 5 segments were removed by ndshm gc")
