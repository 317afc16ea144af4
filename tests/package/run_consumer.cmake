# Configures, builds and runs the consumer project in a fresh WORK_DIR; any failing step fails the test and
# prints its output. Run by ctest (see CMakeLists.txt beside this file):
#
#   cmake -DMODE=find_package|subdirectory -DSOURCE_DIR=<consumer source> -DWORK_DIR=<scratch dir>
#         -DNDSHM_SOURCE_DIR=<ndshm source> -DNDSHM_BINARY_DIR=<ndshm build> -DNDSHM_VERSION=<x.y.z>
#         -DCXX_COMPILER=<c++> -DGENERATOR=<generator> [-DMAKE_PROGRAM=...] [-DCONFIG=<config>]
#         -P run_consumer.cmake
#
# find_package: installs the ndshm build tree into WORK_DIR/prefix, then builds the consumer against it (and,
# with -DPYTHON=<python3> -DPYTHON_MODULE_DIR=<dir below the prefix> [-DPYTHON_ENV=<NAME=VALUE|NAME=VALUE...>], imports the
# installed Python module).
# subdirectory: the consumer does add_subdirectory(NDSHM_SOURCE_DIR) and builds as C++20.
# With -DSEPARATE=ON (a build with NDSHM_SEPARATE_COMPILATION), ndshm::ndshm must be a static library in
# either mode (the installed one, or built under add_subdirectory with the option ON); otherwise an
# interface library.
#
# With -DMPIEXEC=<mpiexec> [-DMPIEXEC_ARGS=<flags;-n;2>] (find_package mode), the consumer also builds
# ndshm_consumer_mpi against ndshm::mpi, and runs it through mpiexec.
cmake_minimum_required(VERSION 3.16)

foreach(var MODE SOURCE_DIR WORK_DIR NDSHM_SOURCE_DIR NDSHM_BINARY_DIR NDSHM_VERSION CXX_COMPILER GENERATOR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: pass -D${var}=...")
  endif()
endforeach()
if(NOT MODE MATCHES "^(find_package|subdirectory)$")
  message(FATAL_ERROR "run_consumer.cmake: MODE must be find_package or subdirectory, not '${MODE}'")
endif()

# Runs one step; stops with its output unless it exits 0.
function(step what)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "${what}: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "${what} failed (${rc}):\n  ${shown}\n${out}")
  endif()
  if(what STREQUAL "run consumer" OR what STREQUAL "import the installed Python module")
    message(STATUS "${out}")
  endif()
  message(STATUS "${what}: ok")
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(build_dir ${WORK_DIR}/build)

set(config_args)
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()

set(configure_args -S ${SOURCE_DIR} -B ${build_dir} -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
                   -DNDSHM_CONSUMER_MODE=${MODE} -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
if(GENERATOR_PLATFORM)
  list(APPEND configure_args -A ${GENERATOR_PLATFORM})
endif()
if(GENERATOR_TOOLSET)
  list(APPEND configure_args -T ${GENERATOR_TOOLSET})
endif()
if(MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
if(CONFIG)
  list(APPEND configure_args -DCMAKE_BUILD_TYPE=${CONFIG})
endif()

if(MODE STREQUAL "find_package")
  set(prefix ${WORK_DIR}/prefix)
  step("install ndshm" ${CMAKE_COMMAND} --install ${NDSHM_BINARY_DIR} --prefix ${prefix} ${config_args})
  if(NOT EXISTS ${prefix}/include/ndshm/ndshm.hpp)
    message(FATAL_ERROR "the install did not put include/ndshm/ndshm.hpp into ${prefix}")
  endif()
  if(PYTHON_MODULE_DIR) # the Python module was built: it is installed too, and imports from there
    set(site ${prefix}/${PYTHON_MODULE_DIR})
    if(IS_ABSOLUTE "${PYTHON_MODULE_DIR}")
      set(site ${PYTHON_MODULE_DIR})
    endif()
    string(REPLACE "|" ";" PYTHON_ENV "${PYTHON_ENV}")
    file(GLOB module ${site}/ndshm*.so)
    if(NOT module)
      message(FATAL_ERROR "the install did not put the Python module ndshm into ${site}")
    endif()
    step("import the installed Python module" ${CMAKE_COMMAND} -E env PYTHONPATH=${site} ${PYTHON_ENV} ${PYTHON} -c
         "import ndshm, sys\nassert ndshm.__file__.startswith(sys.argv[1]), ndshm.__file__\na = ndshm.create(3)\nb = ndshm.attach(ndshm.name_of(a))\nprint('imported', ndshm.__file__, b.shape)" # no ';': step() takes a list
         ${site})
  endif()
  list(APPEND configure_args -DCMAKE_PREFIX_PATH=${prefix} -DNDSHM_EXPECTED_PREFIX=${prefix}
       -DNDSHM_EXPECTED_VERSION=${NDSHM_VERSION})
  if(MPIEXEC)
    list(APPEND configure_args -DNDSHM_CONSUMER_MPI=ON)
  endif()
else()
  list(APPEND configure_args -DNDSHM_SOURCE_DIR=${NDSHM_SOURCE_DIR})
  if(SEPARATE)
    list(APPEND configure_args -DNDSHM_SEPARATE_COMPILATION=ON)
  endif()
endif()
# The consumer checks that it got the kind of ndshm::ndshm this build makes.
if(SEPARATE)
  list(APPEND configure_args -DNDSHM_CONSUMER_EXPECT_TYPE=STATIC_LIBRARY)
else()
  list(APPEND configure_args -DNDSHM_CONSUMER_EXPECT_TYPE=INTERFACE_LIBRARY)
endif()

step("configure consumer" ${CMAKE_COMMAND} ${configure_args})
step("build consumer" ${CMAKE_COMMAND} --build ${build_dir} ${config_args})
step("run consumer" ${build_dir}/bin/ndshm_consumer)
if(MPIEXEC)
  step("run consumer" ${MPIEXEC} ${MPIEXEC_ARGS} ${build_dir}/bin/ndshm_consumer_mpi)
endif()
