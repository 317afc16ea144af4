# Tests of composite objects, files and the store (object.hpp, file.hpp, store.hpp, zstd.hpp).
# Included by tests/CMakeLists.txt.
add_executable(ndshm_object_tests
  ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/object_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/file_test.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/store_test.cpp)
target_link_libraries(ndshm_object_tests PRIVATE ndshm::ndshm ndshm_warnings Catch2::Catch2)
target_compile_definitions(ndshm_object_tests PRIVATE
  NDSHM_TEST_PYTHON="${Python3_EXECUTABLE}"
  NDSHM_TEST_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
catch_discover_tests(ndshm_object_tests PROPERTIES FIXTURES_REQUIRED ndshm_suite)

# Compression is opt-in: only this test program links zstd (Debian: libzstd-dev).
find_package(zstd QUIET)
if(TARGET zstd::libzstd_shared)
  add_executable(ndshm_zstd_tests ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp ${CMAKE_CURRENT_SOURCE_DIR}/zstd_test.cpp)
  target_link_libraries(ndshm_zstd_tests PRIVATE ndshm::ndshm ndshm_warnings Catch2::Catch2 zstd::libzstd_shared)
  target_compile_definitions(ndshm_zstd_tests PRIVATE
    NDSHM_TEST_PYTHON="${Python3_EXECUTABLE}"
    NDSHM_TEST_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
  catch_discover_tests(ndshm_zstd_tests PROPERTIES FIXTURES_REQUIRED ndshm_suite)
else()
  message(STATUS "ndshm: zstd not found (Debian: libzstd-dev); the compression tests are not built")
endif()

# share<T> of a type cereal cannot serialise must fail to compile with ndshm's own message.
add_test(NAME object_not_serialisable_is_a_compile_error
         COMMAND ${CMAKE_CXX_COMPILER} -std=c++17 -fsyntax-only
                 "-I$<JOIN:$<TARGET_PROPERTY:ndshm,INTERFACE_INCLUDE_DIRECTORIES>,;-I>"
                 "-I$<JOIN:$<TARGET_PROPERTY:xtensor,INTERFACE_INCLUDE_DIRECTORIES>,;-I>"
                 ${CMAKE_CURRENT_SOURCE_DIR}/objects_compile_fail.cpp
         COMMAND_EXPAND_LISTS)
set_tests_properties(object_not_serialisable_is_a_compile_error PROPERTIES
  PASS_REGULAR_EXPRESSION "ndshm: cereal cannot serialise this type")

# ... and so must a nested member of such a type (at any depth), with the message naming the member.
add_test(NAME object_nested_not_serialisable_is_a_compile_error
         COMMAND ${CMAKE_CXX_COMPILER} -std=c++17 -fsyntax-only
                 "-I$<JOIN:$<TARGET_PROPERTY:ndshm,INTERFACE_INCLUDE_DIRECTORIES>,;-I>"
                 "-I$<JOIN:$<TARGET_PROPERTY:xtensor,INTERFACE_INCLUDE_DIRECTORIES>,;-I>"
                 ${CMAKE_CURRENT_SOURCE_DIR}/objects_nested_compile_fail.cpp
         COMMAND_EXPAND_LISTS)
set_tests_properties(object_nested_not_serialisable_is_a_compile_error PROPERTIES
  PASS_REGULAR_EXPRESSION "(no_serialize.*cannot serialise a member of this object|cannot serialise a member of this object.*no_serialize)")
