/// @file detail/xtensor_compat.hpp
/// The only ndshm header that names xtensor's header paths. xtensor 0.26 moved its headers into
/// subfolders; this header finds them in either place (0.24, 0.25 and 0.26 are supported). It takes
/// what a view over a mapping needs and what users of ndshm's handles reach for with them: the
/// containers and their adaptors (`xt::adapt`), broadcasting, the element-wise operators and functions (`xoperation`),
/// `xt::view` and `xt::noalias`.
#ifndef NDSHM_DETAIL_XTENSOR_COMPAT_HPP
#define NDSHM_DETAIL_XTENSOR_COMPAT_HPP

#if __has_include(<xtensor/containers/xarray.hpp>)
#include <xtensor/containers/xadapt.hpp>
#include <xtensor/containers/xarray.hpp>
#include <xtensor/containers/xbuffer_adaptor.hpp>
#include <xtensor/core/xexpression.hpp>
#include <xtensor/core/xnoalias.hpp>
#include <xtensor/core/xoperation.hpp>
#include <xtensor/views/xbroadcast.hpp>
#include <xtensor/views/xview.hpp>
#else
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xbuffer_adaptor.hpp>
#include <xtensor/xexpression.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xoperation.hpp>
#include <xtensor/xview.hpp>
#endif

#endif
