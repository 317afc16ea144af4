/// @file detail/array_index.hpp
/// Indices and shapes of an array handle: shapes as NumPy prints them, the check behind at() and its
/// message, and copying the elements two arrays of different shapes have in common (resized()).
#ifndef NDSHM_DETAIL_ARRAY_INDEX_HPP
#define NDSHM_DETAIL_ARRAY_INDEX_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "config.hpp"

namespace ndshm::detail {

/// "(4, 5)": a shape as NumPy prints it.
template <class S>
std::string shape_string(const S& s)
{
    std::string r = "(";
    for (std::size_t k = 0; k < s.size(); ++k) {
        r += (k ? ", " : "") + std::to_string(s[k]);
    }
    return r + (s.size() == 1 ? ",)" : ")");
}

template <class I>
std::string index_string(I i)
{
    if constexpr (std::is_same_v<I, bool>) {
        return i ? "1" : "0";
    } else {
        return std::to_string(i);
    }
}

/// True if `i` is below zero (never for an unsigned index or a bool).
template <class I>
constexpr bool negative_index(I i) noexcept
{
    if constexpr (std::is_signed_v<I> && !std::is_same_v<I, bool>) {
        return i < 0;
    } else {
        (void)i;
        return false;
    }
}

/// True if `i` is a valid index along an axis of `extent` elements.
template <class I>
constexpr bool index_in_extent(I i, std::size_t extent) noexcept
{
    return !negative_index(i) && static_cast<std::size_t>(i) < extent;
}

/// True if `idx...` is one index per dimension of `shape`, each in range. Costs a compare per index:
/// no message is built unless one is thrown.
template <class S, class... Idx>
bool indices_in_range(const S& shape, Idx... idx) noexcept
{
    static_assert((std::is_integral_v<Idx> && ...), "ndshm: array indices must be integers");
    if (sizeof...(Idx) != shape.size()) {
        return false;
    }
    [[maybe_unused]] std::size_t k = 0;
    return (index_in_extent(idx, shape[k++]) && ...);
}

/// True if the indices in [first, last) are one per dimension of `shape`, each in range.
template <class S, class It>
bool index_range_in_bounds(const S& shape, It first, It last) noexcept
{
    std::size_t k = 0;
    for (; first != last; ++first, ++k) {
        if (k == shape.size() || !index_in_extent(*first, shape[k])) {
            return false;
        }
    }
    return k == shape.size();
}

/// Throws std::out_of_range for indices that are not one per dimension of `shape`, or of which the
/// one on axis `bad` is out of range: "ndshm: CALL(INDICES) on 'NAME' of shape (4, 5): " and what is
/// wrong. `index` holds the indices as text.
[[noreturn, gnu::cold]] NDSHM_DECL void throw_bad_index(const char* call, const std::string& name,
                                                        const std::vector<std::size_t>& shape,
                                                        const std::vector<std::string>& index, std::size_t bad);

/// Throws std::out_of_range: `shape(axis)` on an array of `shape`, which has no dimension `axis`.
[[noreturn, gnu::cold]] NDSHM_DECL void throw_bad_axis(const std::string& name, const std::vector<std::size_t>& shape,
                                                       std::size_t axis);

/// The indices in [first, last) that failed a check against `shape`, thrown as std::out_of_range.
template <class S, class It>
[[noreturn, gnu::cold, gnu::noinline]] void throw_bad_index_range(const char* call, const std::string& name,
                                                                  const S& shape, It first, It last)
{
    std::vector<std::string> index;
    std::size_t bad = SIZE_MAX;
    for (; first != last; ++first) {
        if (bad == SIZE_MAX && index.size() < shape.size() && !index_in_extent(*first, shape[index.size()])) {
            bad = index.size();
        }
        index.push_back(index_string(*first));
    }
    throw_bad_index(call, name, std::vector<std::size_t>(shape.begin(), shape.end()), index, bad);
}

/// The indices `idx...` that failed a check against `shape`, thrown as std::out_of_range.
template <class S, class... Idx>
[[noreturn, gnu::cold, gnu::noinline]] void throw_bad_indices(const char* call, const std::string& name, const S& shape,
                                                              Idx... idx)
{
    std::size_t bad = SIZE_MAX;
    [[maybe_unused]] std::size_t k = 0;
    (((bad = (bad == SIZE_MAX && k < shape.size() && !index_in_extent(idx, shape[k])) ? k : bad), ++k), ...);
    throw_bad_index(call, name, std::vector<std::size_t>(shape.begin(), shape.end()), {index_string(idx)...}, bad);
}

/// Throws std::out_of_range unless `idx...` is one index per dimension of `shape`, each in range.
template <class S, class... Idx>
void check_index(const std::string& name, const S& shape, Idx... idx)
{
    if (!indices_in_range(shape, idx...)) {
        throw_bad_indices("at", name, shape, idx...);
    }
}

/// Throws std::out_of_range unless the indices in [first, last) are one per dimension of `shape`,
/// each in range.
template <class S, class It>
void check_index_range(const char* call, const std::string& name, const S& shape, It first, It last)
{
    if (!index_range_in_bounds(shape, first, last)) {
        throw_bad_index_range(call, name, shape, first, last);
    }
}

/// Copies the elements that `from` and `to` (arrays of `from_shape` and `to_shape`, with element
/// strides) have in common: the box of the smaller extent along every axis.
template <class T, class S>
void copy_common(const T* from, const S& from_shape, const S& from_strides, T* to, const S& to_shape,
                 const S& to_strides)
{
    const std::size_t n = from_shape.size();
    std::vector<std::size_t> extent(n), index(n, 0);
    for (std::size_t k = 0; k < n; ++k) {
        extent[k] = std::min(from_shape[k], to_shape[k]);
        if (extent[k] == 0) {
            return;
        }
    }
    for (;;) {
        std::size_t a = 0, b = 0;
        for (std::size_t k = 0; k < n; ++k) {
            a += index[k] * from_strides[k];
            b += index[k] * to_strides[k];
        }
        to[b] = from[a];
        std::size_t k = n;
        while (k > 0 && ++index[k - 1] == extent[k - 1]) {
            index[--k] = 0;
        }
        if (k == 0) {
            return;
        }
    }
}

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void throw_bad_axis(const std::string& name, const std::vector<std::size_t>& shape, std::size_t axis)
{
    throw std::out_of_range("ndshm: shape(" + std::to_string(axis) + ") on '" + name + "' of shape " +
                            shape_string(shape) + ": there is no axis " + std::to_string(axis) + " (" +
                            std::to_string(shape.size()) + " dimensions)");
}

void throw_bad_index(const char* call, const std::string& name, const std::vector<std::size_t>& shape,
                     const std::vector<std::string>& index, std::size_t bad)
{
    std::string text = std::string("ndshm: ") + call + "(";
    for (std::size_t k = 0; k < index.size(); ++k) {
        text += (k ? ", " : "") + index[k];
    }
    text += ") on '" + name + "' of shape " + shape_string(shape) + ": ";
    if (index.size() != shape.size() || bad >= shape.size()) {
        throw std::out_of_range(text + std::to_string(index.size()) + " indices for " + std::to_string(shape.size()) +
                                " dimensions; give one index per dimension");
    }
    throw std::out_of_range(text + "index " + index[bad] + " is out of range for axis " + std::to_string(bad) +
                            " (size " + std::to_string(shape[bad]) + ")");
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
