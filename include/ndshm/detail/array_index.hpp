/// @file detail/array_index.hpp
/// Indices and shapes of an array handle: shapes as NumPy prints them, the check behind at() and its
/// message, and copying the elements two arrays of different shapes have in common (resized()).
#ifndef NDSHM_DETAIL_ARRAY_INDEX_HPP
#define NDSHM_DETAIL_ARRAY_INDEX_HPP

#include <algorithm>
#include <cstddef>
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

/// Throws std::out_of_range: `given` indices for an array of `dims` dimensions. `call` starts the message.
[[noreturn, gnu::cold]] NDSHM_DECL void throw_index_count(const std::string& call, std::size_t given, std::size_t dims);

/// Throws std::out_of_range: `index` is out of range for `axis`, of `size` elements. `call` starts the message.
[[noreturn, gnu::cold]] NDSHM_DECL void throw_index_range(const std::string& call, const std::string& index,
                                                          std::size_t axis, std::size_t size);

/// Throws std::out_of_range unless `idx...` is one index per dimension of `shape`, each in range.
template <class S, class... Idx>
void check_index(const std::string& name, const S& shape, Idx... idx)
{
    static_assert((std::is_integral_v<Idx> && ...), "ndshm: array indices must be integers");
    const std::string call = "ndshm: at(" +
                             [&] {
                                 std::string s;
                                 ((s += (s.empty() ? "" : ", ") + index_string(idx)), ...);
                                 return s;
                             }() +
                             ") on '" + name + "' of shape " + shape_string(shape) + ": ";
    if (sizeof...(Idx) != shape.size()) {
        throw_index_count(call, sizeof...(Idx), shape.size());
    }
    std::size_t k = 0;
    [[maybe_unused]] const auto one = [&](auto i) {
        const bool negative = std::is_signed_v<decltype(i)> && i < 0;
        if (negative || static_cast<std::size_t>(i) >= shape[k]) {
            throw_index_range(call, index_string(i), k, shape[k]);
        }
        ++k;
    };
    (one(idx), ...);
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

void throw_index_count(const std::string& call, std::size_t given, std::size_t dims)
{
    throw std::out_of_range(call + std::to_string(given) + " indices for " + std::to_string(dims) +
                            " dimensions; give one index per dimension");
}

void throw_index_range(const std::string& call, const std::string& index, std::size_t axis, std::size_t size)
{
    throw std::out_of_range(call + "index " + index + " is out of range for axis " + std::to_string(axis) + " (size " +
                            std::to_string(size) + ")");
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
