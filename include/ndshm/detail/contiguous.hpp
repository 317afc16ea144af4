/// @file detail/contiguous.hpp
/// An xtensor expression's elements as bytes in memory, in C or Fortran order: a container's own, or
/// a C-order copy of anything else. What saving an expression to a file writes.
#ifndef NDSHM_DETAIL_CONTIGUOUS_HPP
#define NDSHM_DETAIL_CONTIGUOUS_HPP

#include <cstddef>
#include <type_traits>
#include <vector>

#include "../dtype.hpp"
#include "array_view.hpp"
#include "xtensor_compat.hpp"

namespace ndshm::detail {

/// Calls f(dtype, shape, fortran, data, nbytes) with the elements of `expr` in memory: a C- or
/// Fortran-order container's own bytes, or else (or if `c_order` and it is Fortran) a C-order copy.
template <class E, class F>
void with_contiguous(const xt::xexpression<E>& expr, bool c_order, F&& f)
{
    using value_type = std::decay_t<typename E::value_type>;
    static_assert(is_element_type_v<value_type>,
                  "ndshm: the expression's value type must be bool, a fixed-width integer, float, double, "
                  "std::complex<float> or std::complex<double>");
    const auto& e = expr.derived_cast();
    const std::vector<std::size_t> shape(e.shape().begin(), e.shape().end());
    // Not xt::eval: in C++20 mode xtensor 0.24 evaluates a dynamic-rank expression into a container of
    // rank 4, whatever its rank. A container is written from its own memory, anything else evaluated
    // into an xarray.
    if constexpr (is_container<E>::value) {
        const xt::layout_type l = contiguous_layout(e.shape(), e.strides());
        const bool fortran = l == xt::layout_type::column_major && shape.size() > 1;
        const bool whole = e.storage().size() == e.size();
        if (whole &&
            (l == xt::layout_type::row_major || (l == xt::layout_type::column_major && !(c_order && fortran)))) {
            f(dtype_of<value_type>, shape, fortran, static_cast<const void*>(e.data()), e.size() * sizeof(value_type));
            return;
        }
    }
    const xt::xarray<value_type, xt::layout_type::row_major> c = e;
    f(dtype_of<value_type>, shape, false, static_cast<const void*>(c.data()), c.size() * sizeof(value_type));
}

} // namespace ndshm::detail

#endif
