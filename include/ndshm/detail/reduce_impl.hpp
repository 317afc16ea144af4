/// @file detail/reduce_impl.hpp
/// How map_reduce combines the results of its chunks with the reducers of reduce.hpp: a fold with
/// reduce::sum, minimum, maximum or a callable, and reduce::concatenate of vectors or arrays.
#ifndef NDSHM_DETAIL_REDUCE_IMPL_HPP
#define NDSHM_DETAIL_REDUCE_IMPL_HPP

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "xtensor_compat.hpp"

#include "../error.hpp"
#include "array_handle.hpp"
#include "config.hpp"
#include "pool_codec.hpp"

namespace ndshm {
namespace reduce {

struct sum_t;
struct minimum_t;
struct maximum_t;
struct concatenate_t;
struct none_t;
template <class T>
struct add_into_t;

} // namespace reduce

namespace detail {

template <class R>
struct is_std_vector : std::false_type {
};
template <class V, class A>
struct is_std_vector<std::vector<V, A>> : std::true_type {
};

template <class T>
struct is_add_into : std::false_type {
};
template <class T>
struct is_add_into<reduce::add_into_t<T>> : std::true_type {
};

/// Throws map_reduce's error for chunk results (array `name`) whose shapes differ, so that
/// reduce::`what` cannot combine them elementwise.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_shapes_differ(const std::string& name, const char* what);
/// Throws reduce::concatenate's error for a chunk's 0-d result array `name`.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_concatenate_0d(const std::string& name);
/// Throws reduce::concatenate's error for a result array `name` whose dimensions after axis 0 differ.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_concatenate_dims(const std::string& name);

template <class T>
void check_same_shape(const shared_ndarray<T>& acc, const shared_ndarray<T>& r, const char* what)
{
    if (acc.shape() != r.shape()) {
        raise_shapes_differ(r.name(), what);
    }
}

/// Folds the results (at least one, in chunk order) with one of the built-in reducers or a callable.
template <class R, class Reducer>
R fold_results(std::vector<R>& results, const Reducer& reducer)
{
    R acc = std::move(results.front());
    for (std::size_t i = 1; i < results.size(); ++i) {
        R& r = results[i];
        if constexpr (std::is_same_v<Reducer, reduce::sum_t>) {
            if constexpr (is_shared_ndarray<R>::value) {
                check_same_shape(acc, r, "sum");
                acc.view() += r.view();
            } else {
                acc = std::move(acc) + r;
            }
        } else if constexpr (std::is_same_v<Reducer, reduce::minimum_t> || std::is_same_v<Reducer, reduce::maximum_t>) {
            constexpr bool least = std::is_same_v<Reducer, reduce::minimum_t>;
            if constexpr (is_shared_ndarray<R>::value) {
                check_same_shape(acc, r, least ? "minimum" : "maximum");
                if constexpr (least) {
                    acc.view() = xt::minimum(acc.view(), r.view());
                } else {
                    acc.view() = xt::maximum(acc.view(), r.view());
                }
            } else if (least ? r < acc : acc < r) {
                acc = std::move(r);
            }
        } else {
            acc = reducer(std::move(acc), std::move(r));
        }
    }
    return acc;
}

/// reduce::concatenate of std::vector or shared_ndarray results, in chunk order.
template <class R>
R concatenate_results(std::vector<R>& results)
{
    if constexpr (is_std_vector<R>::value) {
        R out;
        std::size_t n = 0;
        for (const R& r : results) {
            n += r.size();
        }
        out.reserve(n);
        for (R& r : results) {
            std::move(r.begin(), r.end(), std::back_inserter(out));
        }
        return out;
    } else {
        std::vector<std::size_t> shape;
        std::size_t rows = 0;
        bool fortran = false;
        for (const R& r : results) {
            if (r.empty()) {
                continue;
            }
            if (r.dimension() == 0) {
                raise_concatenate_0d(r.name());
            }
            std::vector<std::size_t> rest(r.shape().begin() + 1, r.shape().end());
            if (shape.empty()) {
                shape.assign(r.shape().begin(), r.shape().end());
                fortran = r.fortran_order();
            } else if (!std::equal(shape.begin() + 1, shape.end(), rest.begin(), rest.end())) {
                raise_concatenate_dims(r.name());
            }
            rows += r.shape()[0];
        }
        if (shape.empty()) {
            return R{};
        }
        shape[0] = rows;
        R out = R::create(shape);
        std::size_t row = 0;
        for (const R& r : results) {
            if (r.empty() || r.shape()[0] == 0) {
                continue;
            }
            const std::size_t n = r.shape()[0];
            if (!fortran && !r.fortran_order()) {
                std::memcpy(out.data() + row * (out.size() / rows), r.data(), r.nbytes());
            } else {
                auto target = xt::view(out.view(), xt::range(row, row + n));
                target = r.view();
            }
            row += n;
        }
        return out;
    }
}

} // namespace detail
} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void raise_shapes_differ(const std::string& name, const char* what)
{
    raise<error>("map_reduce", name,
                 std::string("two chunks' results differ in shape, so reduce::") + what +
                     " cannot combine them elementwise",
                 "return arrays of one shape from every chunk (or use reduce::concatenate)", errno_code(EINVAL));
}

void raise_concatenate_0d(const std::string& name)
{
    raise<error>("map_reduce", name, "a chunk returned a 0-d array, which has no axis 0 to join along",
                 "return arrays of at least one dimension (or a std::vector)", errno_code(EINVAL));
}

void raise_concatenate_dims(const std::string& name)
{
    raise<error>("map_reduce", name,
                 "the chunks' results differ in their dimensions after axis 0, so reduce::concatenate "
                 "cannot join them",
                 "return arrays whose shapes differ only in axis 0", errno_code(EINVAL));
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif // NDSHM_DETAIL_REDUCE_IMPL_HPP
