# How ndshm's tests, examples and benchmarks are built and registered: one function per kind, so that
# tests/CMakeLists.txt, examples/CMakeLists.txt and benchmarks/CMakeLists.txt each read as a list of calls.
# Included by the top-level CMakeLists.txt when any of them is built; not installed.
#
# Every test that may create segments runs inside the fixture ndshm_suite: tests/CMakeLists.txt records
# what /dev/shm holds before the suite and checks after it that nothing was left behind.
include_guard(GLOBAL)

# ndshm_add_program(<target> SOURCES <file>... [MPI] [DEFINITIONS <def>...] [LIBRARIES <lib>...]
#                   [DEPENDS <target>...])
# An executable of ndshm's own, with ndshm's warnings: it links ndshm::ndshm (ndshm::mpi with MPI),
# ndshm_warnings, then LIBRARIES; DEFINITIONS are its private compile definitions; the DEPENDS targets are
# built before it (programs it runs, whose paths it is given in DEFINITIONS).
function(ndshm_add_program target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "MPI" "" "SOURCES;DEFINITIONS;LIBRARIES;DEPENDS")
  set(library ndshm::ndshm)
  if(arg_MPI)
    set(library ndshm::mpi)
  endif()
  add_executable(${target} ${arg_SOURCES})
  target_link_libraries(${target} PRIVATE ${library} ndshm_warnings ${arg_LIBRARIES})
  if(arg_DEFINITIONS)
    target_compile_definitions(${target} PRIVATE ${arg_DEFINITIONS})
  endif()
  if(arg_DEPENDS)
    add_dependencies(${target} ${arg_DEPENDS})
  endif()
endfunction()

# ndshm_add_command_test(<name> COMMAND <program> [<arg>...] [ENVIRONMENT <var=value>...] [LABELS <label>...])
# A ctest test that runs a command inside the suite's fixture.
function(ndshm_add_command_test name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "COMMAND;ENVIRONMENT;LABELS")
  add_test(NAME ${name} COMMAND ${arg_COMMAND})
  set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED ndshm_suite)
  if(arg_ENVIRONMENT)
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${arg_ENVIRONMENT}")
  endif()
  if(arg_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${arg_LABELS}")
  endif()
endfunction()

# ndshm_catch_main(<target> SOURCE <file> [LIBRARIES <lib>...])
# An object library of one Catch2 main (its runner and Catch2's whole implementation, about 20 s of
# compiling): built once and linked into every test program that uses it, instead of once per program.
function(ndshm_catch_main target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "SOURCE" "LIBRARIES")
  if(NOT TARGET ${target})
    add_library(${target} OBJECT ${arg_SOURCE})
    target_link_libraries(${target} PUBLIC Catch2::Catch2 ${arg_LIBRARIES} PRIVATE ndshm_warnings)
  endif()
endfunction()

# ndshm_add_test(<target> SOURCES <file>... [DEFINITIONS <def>...] [LIBRARIES <lib>...] [DEPENDS <target>...])
# A Catch2 test program (Catch2's main from tests/main.cpp, compiled once, and SOURCES; the rest as
# ndshm_add_program) whose test cases are each a ctest test inside the suite's fixture, found when the
# program is built.
function(ndshm_add_test target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES;DEFINITIONS;LIBRARIES;DEPENDS")
  ndshm_catch_main(ndshm_catch_main SOURCE ${PROJECT_SOURCE_DIR}/tests/main.cpp)
  ndshm_add_program(${target} SOURCES ${arg_SOURCES}
                    DEFINITIONS ${arg_DEFINITIONS} LIBRARIES ndshm_catch_main ${arg_LIBRARIES} DEPENDS ${arg_DEPENDS})
  catch_discover_tests(${target} PROPERTIES FIXTURES_REQUIRED ndshm_suite)
endfunction()

# ndshm_add_compile_fail_test(<name> SOURCE <file> EXPECT <regex>)
# A ctest test that compiles <file> (-fsyntax-only, C++17, against ndshm's and xtensor's headers) and
# passes when the compiler's output matches <regex>: the file must not compile, and the message must say why.
function(ndshm_add_compile_fail_test name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "SOURCE;EXPECT" "")
  add_test(NAME ${name}
           COMMAND ${CMAKE_CXX_COMPILER} -std=c++17 -fsyntax-only
                   "-I$<JOIN:$<TARGET_PROPERTY:ndshm,INTERFACE_INCLUDE_DIRECTORIES>,;-I>"
                   "-I$<JOIN:$<TARGET_PROPERTY:xtensor,INTERFACE_INCLUDE_DIRECTORIES>,;-I>"
                   ${CMAKE_CURRENT_SOURCE_DIR}/${arg_SOURCE}
           COMMAND_EXPAND_LISTS)
  set_tests_properties(${name} PROPERTIES PASS_REGULAR_EXPRESSION "${arg_EXPECT}")
endfunction()

# ndshm_add_header_check(<target> HEADERS <header>... [PLACED <header>...] LIBRARIES <lib>...)
# An object library that compiles generated translation units of public headers (named as they are
# included, ndshm/x.hpp). Without PLACED: for each header H, one unit includes H first and then every other
# one, so each ordered pair (H, X) is compiled with H before X. With PLACED: each PLACED header once first
# and once last with all of HEADERS, so it needs nothing they do not give and breaks none of them.
function(ndshm_add_header_check target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "HEADERS;PLACED;LIBRARIES")
  set(sources)
  if(NOT arg_PLACED)
    foreach(first IN LISTS arg_HEADERS)
      string(MAKE_C_IDENTIFIER ${first} id)
      set(text "// Generated by cmake/ndshmTesting.cmake: ${first} first, then every other public header.\n")
      string(APPEND text "#include <${first}>\n")
      foreach(other IN LISTS arg_HEADERS)
        if(NOT other STREQUAL first)
          string(APPEND text "#include <${other}>\n")
        endif()
      endforeach()
      set(file ${CMAKE_CURRENT_BINARY_DIR}/header_check/${id}.cpp)
      file(CONFIGURE OUTPUT ${file} CONTENT "${text}")
      list(APPEND sources ${file})
    endforeach()
  endif()
  foreach(placed IN LISTS arg_PLACED)
    string(MAKE_C_IDENTIFIER ${placed} id)
    foreach(position first last)
      set(text "// Generated by cmake/ndshmTesting.cmake: ${placed} ${position}, and every other public header.\n")
      if(position STREQUAL "first")
        string(APPEND text "#include <${placed}>\n")
      endif()
      foreach(other IN LISTS arg_HEADERS)
        string(APPEND text "#include <${other}>\n")
      endforeach()
      if(position STREQUAL "last")
        string(APPEND text "#include <${placed}>\n")
      endif()
      set(file ${CMAKE_CURRENT_BINARY_DIR}/header_check/${id}_${position}.cpp)
      file(CONFIGURE OUTPUT ${file} CONTENT "${text}")
      list(APPEND sources ${file})
    endforeach()
  endforeach()
  add_library(${target} OBJECT ${sources})
  target_link_libraries(${target} PRIVATE ${arg_LIBRARIES})
endfunction()

# ndshm_add_example(<name> [DEFINITIONS <def>...] [LIBRARIES <lib>...] [DEPENDS <target>...]
#                   [ENVIRONMENT <var=value>...] [MPI RANKS <n> NODES <k>])
# examples/<name>.cpp, built as ndshm_example_<name> (as ndshm_add_program) and run as the test
# example_<name> inside the suite's fixture; with MPI, through mpiexec (as ndshm_add_mpi_test), and built
# by ndshm_mpi_checks.
function(ndshm_add_example name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "MPI" "RANKS;NODES" "DEFINITIONS;LIBRARIES;DEPENDS;ENVIRONMENT")
  set(target ndshm_example_${name})
  set(mpi)
  if(arg_MPI)
    set(mpi MPI)
  endif()
  ndshm_add_program(${target} ${mpi} SOURCES ${PROJECT_SOURCE_DIR}/examples/${name}.cpp
                    DEFINITIONS ${arg_DEFINITIONS} LIBRARIES ${arg_LIBRARIES} DEPENDS ${arg_DEPENDS})
  if(arg_MPI)
    ndshm_add_mpi_test(NAME example_${name} RANKS ${arg_RANKS} NODES ${arg_NODES} COMMAND $<TARGET_FILE:${target}>)
    if(TARGET ndshm_mpi_checks)
      add_dependencies(ndshm_mpi_checks ${target})
    endif()
  else()
    ndshm_add_command_test(example_${name} COMMAND ${target} ENVIRONMENT ${arg_ENVIRONMENT})
  endif()
endfunction()

# ndshm_add_benchmark(<name>)
# benchmarks/bench_<name>.cpp, a Google Benchmark program built as bench_<name> (as ndshm_add_program).
function(ndshm_add_benchmark name)
  ndshm_add_program(bench_${name} SOURCES ${PROJECT_SOURCE_DIR}/benchmarks/bench_${name}.cpp
                    LIBRARIES benchmark::benchmark)
endfunction()

# ndshm_add_mpi_benchmark(): benchmarks/bench_mpi.cpp as ndshm_bench_mpi, once, by whichever of tests/ (which
# runs it small as a test) and benchmarks/ asks first. A plain MPI program, not a Google Benchmark one, so
# scripts/bench_report.py does not run it (its name does not start with bench_).
function(ndshm_add_mpi_benchmark)
  if(NOT TARGET ndshm_bench_mpi)
    ndshm_add_program(ndshm_bench_mpi MPI SOURCES ${PROJECT_SOURCE_DIR}/benchmarks/bench_mpi.cpp)
  endif()
endfunction()

# MPI tests (with -DNDSHM_WITH_MPI=ON) run a program through mpiexec with NDSHM_MPI_EMULATED_NODES=<k>: that
# many emulated nodes per machine, so one machine has several node copies. The cache variable
# NDSHM_MPIEXEC_FLAGS holds what mpiexec needs for that here (unless set already).
function(ndshm_find_mpiexec_flags)
  if(DEFINED NDSHM_MPIEXEC_FLAGS)
    return()
  endif()
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
endfunction()
if(NDSHM_WITH_MPI AND (NDSHM_BUILD_TESTS OR NDSHM_BUILD_EXAMPLES))
  ndshm_find_mpiexec_flags()
endif()

# ndshm_mpi_test_properties(<test> <nodes>): the properties every MPI test has: labelled `mpi`, run alone
# (each rank is a process; the machine may have fewer cores than ranks), inside the suite's fixture, with
# <nodes> emulated nodes.
function(ndshm_mpi_test_properties test nodes)
  set_tests_properties(${test} PROPERTIES LABELS mpi RUN_SERIAL TRUE TIMEOUT 300 FIXTURES_REQUIRED ndshm_suite
                       ENVIRONMENT "NDSHM_MPI_EMULATED_NODES=${nodes}")
endfunction()

# ndshm_add_mpi_test(NAME <name> RANKS <n> NODES <k> COMMAND <program> [<arg>...])
# A ctest test that runs <program> on <n> ranks through mpiexec with <k> emulated nodes, with the
# properties of ndshm_mpi_test_properties.
function(ndshm_add_mpi_test)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME;RANKS;NODES" "COMMAND")
  add_test(NAME ${arg_NAME}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${arg_RANKS} ${NDSHM_MPIEXEC_FLAGS}
                   ${MPIEXEC_PREFLAGS} ${arg_COMMAND} ${MPIEXEC_POSTFLAGS})
  ndshm_mpi_test_properties(${arg_NAME} ${arg_NODES})
endfunction()
