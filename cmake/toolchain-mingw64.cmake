# Cross-compiling ndshm's portable tests for 64-bit Windows with Debian's mingw-w64 (posix thread model,
# which provides std::thread and std::mutex): cmake -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-mingw64.cmake.
# Programs are linked statically so that they run under wine (or on Windows) without mingw's DLLs.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(NDSHM_MINGW_TRIPLE x86_64-w64-mingw32)

find_program(CMAKE_C_COMPILER NAMES ${NDSHM_MINGW_TRIPLE}-gcc-posix ${NDSHM_MINGW_TRIPLE}-gcc)
find_program(CMAKE_CXX_COMPILER NAMES ${NDSHM_MINGW_TRIPLE}-g++-posix ${NDSHM_MINGW_TRIPLE}-g++)
find_program(CMAKE_RC_COMPILER NAMES ${NDSHM_MINGW_TRIPLE}-windres)

set(CMAKE_FIND_ROOT_PATH /usr/${NDSHM_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")

# Run cross-built programs (catch_discover_tests, ctest) under wine when it is installed.
find_program(NDSHM_WINE NAMES wine64 wine PATHS /usr/lib/wine NO_CMAKE_FIND_ROOT_PATH)
if(NDSHM_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${NDSHM_WINE})
endif()
