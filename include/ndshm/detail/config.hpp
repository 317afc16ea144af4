/// @file detail/config.hpp
/// Where the bodies of ndshm's non-template functions are compiled.
///
/// By default ndshm is header-only: every translation unit that includes a header compiles the bodies
/// of the functions it uses (`NDSHM_DECL` is `inline`). With `NDSHM_SEPARATE_COMPILATION` defined in
/// every translation unit (CMake: `-DNDSHM_SEPARATE_COMPILATION=ON`, which builds `ndshm::ndshm` as a
/// static library and defines it for its users), the headers declare those functions only and one
/// translation unit compiles them: `src/ndshm.cpp`, which includes `<ndshm/src.hpp>`. Templates stay in
/// the headers either way.
#ifndef NDSHM_DETAIL_CONFIG_HPP
#define NDSHM_DETAIL_CONFIG_HPP

#if defined(NDSHM_SEPARATE_COMPILATION)
#define NDSHM_DECL
#if defined(NDSHM_BUILDING_LIBRARY)
#define NDSHM_DEFINITIONS 1
#else
#define NDSHM_DEFINITIONS 0
#endif
#else
#define NDSHM_DECL inline
#define NDSHM_DEFINITIONS 1
#endif

#endif
