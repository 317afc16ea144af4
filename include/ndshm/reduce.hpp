/// @file reduce.hpp
/// Reducers for `fork_pool::map_reduce`: how the results of a function run over the chunks of a shared
/// array become one result. `reduce::sum`, `reduce::minimum`, `reduce::maximum`, `reduce::concatenate`,
/// `reduce::none`, `reduce::add_into(acc)` (per-worker accumulators in shared memory, added into `acc`
/// without sending the partial results anywhere), or any callable `R(R, R)` of your own.
#ifndef NDSHM_REDUCE_HPP
#define NDSHM_REDUCE_HPP

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xoperation.hpp>

#include "detail/pool_impl.hpp"
#include "error.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {
namespace reduce {

/// Adds the results: `a + b` for numbers and values with `operator+`; elementwise for shared_ndarray
/// results of one shape (added into the first, which the caller receives).
struct sum_t {};
/// The smallest result (elementwise for shared_ndarray results of one shape).
struct minimum_t {};
/// The largest result (elementwise for shared_ndarray results of one shape).
struct maximum_t {};
/// The results one after the other, in chunk order: a std::vector<V> result appended, shared_ndarray
/// results joined along axis 0 into a new array (their other dimensions must agree).
struct concatenate_t {};
/// No result: the function works by its side effects (for example writes into a shared array).
struct none_t {};

inline constexpr sum_t sum{};
inline constexpr minimum_t minimum{};
inline constexpr maximum_t maximum{};
inline constexpr concatenate_t concatenate{};
inline constexpr none_t none{};

/// Per-worker accumulators: every worker gets its own zeroed array of `acc`'s shape and dtype in shared
/// memory, the function adds its chunk's contribution into it (`void f(chunk<X>, shared_ndarray<T>&
/// partial, ...)`), and when every chunk is done the partial arrays are added into `acc` in the calling
/// process. No partial result is serialised or copied through a pipe.
template <class T>
struct add_into_t {
    shared_ndarray<T> acc;
};

/// `reduce::add_into(acc)`: see add_into_t.
template <class T>
add_into_t<T> add_into(shared_ndarray<T> acc)
{
    static_assert(!std::is_const_v<T>, "reduce::add_into adds into the accumulator: pass a writable shared_ndarray<T>");
    return add_into_t<T>{std::move(acc)};
}

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

template <class T>
void check_same_shape(const shared_ndarray<T>& acc, const shared_ndarray<T>& r, const char* what)
{
    if (acc.shape() != r.shape()) {
        raise<error>("map_reduce", r.name(),
                     std::string("two chunks' results differ in shape, so reduce::") + what +
                         " cannot combine them elementwise",
                     "return arrays of one shape from every chunk (or use reduce::concatenate)", errno_code(EINVAL));
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
                raise<error>("map_reduce", r.name(), "a chunk returned a 0-d array, which has no axis 0 to join along",
                             "return arrays of at least one dimension (or a std::vector)", errno_code(EINVAL));
            }
            std::vector<std::size_t> rest(r.shape().begin() + 1, r.shape().end());
            if (shape.empty()) {
                shape.assign(r.shape().begin(), r.shape().end());
                fortran = r.fortran_order();
            } else if (!std::equal(shape.begin() + 1, shape.end(), rest.begin(), rest.end())) {
                raise<error>("map_reduce", r.name(),
                             "the chunks' results differ in their dimensions after axis 0, so reduce::concatenate "
                             "cannot join them",
                             "return arrays whose shapes differ only in axis 0", errno_code(EINVAL));
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

#endif // NDSHM_REDUCE_HPP
