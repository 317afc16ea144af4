/// @file detail/xtensor_compat.hpp
/// The only ndshm header that includes xtensor. xtensor 0.26 moved its headers into subfolders;
/// this header finds them in either place (0.24, 0.25 and 0.26 are supported).
#ifndef NDSHM_DETAIL_XTENSOR_COMPAT_HPP
#define NDSHM_DETAIL_XTENSOR_COMPAT_HPP

#if __has_include(<xtensor/containers/xadapt.hpp>)
#include <xtensor/containers/xadapt.hpp>
#include <xtensor/containers/xarray.hpp>
#include <xtensor/core/xexpression.hpp>
#else
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xexpression.hpp>
#endif

#include <cstddef>
#include <vector>

namespace ndshm::detail {

/// The xtensor adaptor type `shared_ndarray<T>::view()` returns: no ownership, dynamic rank, and
/// row- or column-major chosen at run time.
template <class T>
using view_type = decltype(xt::adapt<xt::layout_type::dynamic>(static_cast<T*>(nullptr), std::size_t{},
                                                               xt::no_ownership(), std::vector<std::size_t>{},
                                                               xt::layout_type::row_major));

template <class T>
inline view_type<T> make_view(T* data, std::size_t size, const std::vector<std::size_t>& shape, bool fortran_order)
{
    return xt::adapt<xt::layout_type::dynamic>(static_cast<T*>(data), size, xt::no_ownership(), shape,
                                               fortran_order ? xt::layout_type::column_major
                                                             : xt::layout_type::row_major);
}

} // namespace ndshm::detail

#endif
