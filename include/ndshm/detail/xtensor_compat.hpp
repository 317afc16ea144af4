/// @file detail/xtensor_compat.hpp
/// The only ndshm header that includes xtensor. xtensor 0.26 moved its headers into subfolders;
/// this header finds them in either place (0.24, 0.25 and 0.26 are supported).
#ifndef NDSHM_DETAIL_XTENSOR_COMPAT_HPP
#define NDSHM_DETAIL_XTENSOR_COMPAT_HPP

#if __has_include(<xtensor/containers/xadapt.hpp>)
#include <xtensor/containers/xadapt.hpp>
#include <xtensor/containers/xarray.hpp>
#include <xtensor/core/xexpression.hpp>
#include <xtensor/views/xstrided_view.hpp>
#else
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xexpression.hpp>
#include <xtensor/xstrided_view.hpp>
#endif

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

namespace ndshm::detail {

template <class T>
using adaptor_type = decltype(xt::adapt<xt::layout_type::dynamic>(static_cast<T*>(nullptr), std::size_t{},
                                                                  xt::no_ownership(), std::vector<std::size_t>{},
                                                                  xt::layout_type::row_major));

/// The xtensor expression `shared_ndarray<T>::view()` returns: a strided view over an adaptor of the
/// mapping (no ownership, dynamic rank, row- or column-major chosen at run time).
///
/// Why not the bare adaptor: xtensor assigns to a container through a temporary and then moves the
/// temporary's shape, strides and elements in. With a run-time layout that temporary is row-major,
/// so `view = expr` on a Fortran-order segment would silently store C-order bytes. A view's
/// assignment copies the temporary element by element through the view's own strides instead.
template <class T>
using view_type = decltype(xt::strided_view(std::declval<adaptor_type<T>>(), xt::xstrided_slice_vector{}));

template <class T>
inline view_type<T> make_view(T* data, std::size_t size, const std::vector<std::size_t>& shape, bool fortran_order)
{
    return xt::strided_view(
        xt::adapt<xt::layout_type::dynamic>(static_cast<T*>(data), size, xt::no_ownership(), shape,
                                            fortran_order ? xt::layout_type::column_major : xt::layout_type::row_major),
        xt::xstrided_slice_vector{});
}

} // namespace ndshm::detail

#endif
