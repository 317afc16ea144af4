/// @file shared_ndarray.hpp
/// `ndshm::shared_ndarray<T>`: an n-d array of any rank in a named shared-memory segment, seen
/// through xtensor. The core of ndshm; `shared_tensor.hpp` has the fixed-rank form.
#ifndef NDSHM_SHARED_NDARRAY_HPP
#define NDSHM_SHARED_NDARRAY_HPP

#include <cstddef>
#include <string>
#include <type_traits>

#include "detail/array_handle.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "options.hpp"
#include "segment.hpp"

namespace ndshm {

/// A handle to an n-d array of T in a named shared-memory segment (docs/format.md has the segment
/// format, the README the lifetime rules).
///
/// - `create` and `from_array` make a new segment and own its name: the last owning handle in the
///   creating process unlinks it, unless `persist()` was called. Handles copied into a forked child
///   never unlink.
/// - `attach` maps an existing segment without copying and never owns it.
/// - Copies of a handle share one mapping; the mapping stays valid until the last copy is gone. A
///   moved-from or reset handle is empty: size 0, no dimensions, null data, an empty view.
/// - `shared_ndarray<const T>` is a read-only handle: its attach maps the segment with PROT_READ.
/// - `view()` is an xtensor container adaptor over the mapping; `operator()` is unchecked, `at()`
///   checked.
///
/// T is bool, an integer type of 1, 2, 4 or 8 bytes, float, double, std::complex<float> or
/// std::complex<double>, optionally const.
template <class T>
class shared_ndarray : public detail::array_base<shared_ndarray<T>, T, dynamic_rank> {
    using base = detail::array_base<shared_ndarray<T>, T, dynamic_rank>;

public:
    /// The same kind of handle of element type U.
    template <class U>
    using rebind = shared_ndarray<U>;

    /// An empty handle: no segment, size 0.
    shared_ndarray() = default;

    /// A read-only handle from a writable one (shares the mapping).
    template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
    shared_ndarray(const shared_ndarray<U>& o) // NOLINT(google-explicit-constructor): like T* to const T*
        : base(o)
    {
    }

    /// A handle of any rank from a fixed-rank one (shares the mapping).
    template <class U, std::size_t N,
              class = std::enable_if_t<std::is_same_v<U, T> || (std::is_same_v<const U, T> && !std::is_same_v<U, T>)>>
    shared_ndarray(const shared_tensor<U, N>& o) // NOLINT(google-explicit-constructor): like xtensor to xarray
        : base(o)
    {
    }

private:
    friend base;
    friend class any_ndarray;
    friend struct detail::array_access;
    template <class, std::size_t>
    friend class shared_tensor;

    shared_ndarray(std::shared_ptr<detail::mapping> m, const detail::npy_info& info) : base(std::move(m), info) {}
};

} // namespace ndshm

#endif
