/// @file src.hpp
/// The bodies of ndshm's non-template functions, for separate compilation: include this header in
/// exactly one translation unit of a program built with `NDSHM_SEPARATE_COMPILATION` defined (CMake's
/// `-DNDSHM_SEPARATE_COMPILATION=ON` compiles `src/ndshm.cpp`, which does only this). See
/// `detail/config.hpp`.
#ifndef NDSHM_SRC_HPP
#define NDSHM_SRC_HPP

#if !defined(NDSHM_SEPARATE_COMPILATION)
#error "ndshm/src.hpp is for separate compilation: define NDSHM_SEPARATE_COMPILATION in every translation unit"
#endif
#if defined(NDSHM_DETAIL_CONFIG_HPP)
#error "include ndshm/src.hpp before any other ndshm header, in a translation unit of its own"
#endif
#define NDSHM_BUILDING_LIBRARY

#include "all.hpp"

#endif
