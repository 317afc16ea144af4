/// @file shared_tensor.hpp
/// `ndshm::shared_tensor<T, N>`: a shared array of rank N fixed at compile time, as `xt::xtensor<T, N>`
/// stands beside `xt::xarray<T>`.
#ifndef NDSHM_SHARED_TENSOR_HPP
#define NDSHM_SHARED_TENSOR_HPP

#include <cstddef>
#include <type_traits>

#include "detail/array_handle.hpp"
#include "error.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

/// A handle to an array of rank N in a named shared-memory segment: `shared_ndarray<T>` with a
/// `std::array<std::size_t, N>` shape and a fixed-rank view (an `xt::xtensor_adaptor`), so shape
/// arithmetic and indexing compile to fixed-size loops.
///
///     auto img = ndshm::shared_tensor<float, 2>::create({480, 640});
///     auto same = ndshm::shared_tensor<float, 2>::attach(img.name());
///
/// `attach` refuses a segment of another rank with an ndshm::error naming both ranks. Everything
/// else (lifetime, create, from_array, at, view, persist) is as for shared_ndarray<T>, and a
/// shared_tensor converts to a shared_ndarray of the same element type (the same mapping).
template <class T, std::size_t N>
class shared_tensor : public detail::array_base<shared_tensor<T, N>, T, N> {
    static_assert(N > 0 && N <= 64, "ndshm::shared_tensor<T, N>: N is a rank from 1 to 64");
    using base = detail::array_base<shared_tensor<T, N>, T, N>;

public:
    /// The same kind of handle of element type U.
    template <class U>
    using rebind = shared_tensor<U, N>;

    /// An empty handle: no segment, size 0, shape all zero.
    shared_tensor() = default;

    /// A read-only handle from a writable one (shares the mapping).
    template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
    shared_tensor(const shared_tensor<U, N>& o) // NOLINT(google-explicit-constructor): like T* to const T*
        : base(o)
    {
    }

    /// The fixed-rank handle of an array of any rank (shares the mapping); an empty handle gives an
    /// empty one.
    /// @throws error if `o` is not empty and not of rank N
    template <class U,
              class = std::enable_if_t<std::is_same_v<U, T> || (std::is_same_v<const U, T> && !std::is_same_v<U, T>)>>
    explicit shared_tensor(const shared_ndarray<U>& o) : base(checked(o))
    {
    }

private:
    friend base;
    friend class any_ndarray;
    friend struct detail::array_access;

    shared_tensor(std::shared_ptr<detail::mapping> m, const detail::npy_info& info) : base(std::move(m), info) {}

    template <class U>
    static const shared_ndarray<U>& checked(const shared_ndarray<U>& o)
    {
        if (!o.empty() && o.dimension() != N) {
            detail::raise<error>("shared_tensor of", o.name(),
                                 "the array has rank " + std::to_string(o.dimension()) + " " +
                                     detail::shape_string(o.shape()) + ", not " + std::to_string(N),
                                 "use shared_tensor<T, " + std::to_string(o.dimension()) + ">",
                                 make_error_code(errc::rank_mismatch));
        }
        return o;
    }
};

} // namespace ndshm

#endif
