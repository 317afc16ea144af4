/// @file reduce.hpp
/// Reducers for `fork_pool::map_reduce`: how the results of a function run over the chunks of a shared
/// array become one result. `reduce::sum`, `reduce::minimum`, `reduce::maximum`, `reduce::concatenate`,
/// `reduce::none`, `reduce::add_into(acc)` (per-worker accumulators in shared memory, added into `acc`
/// without sending the partial results anywhere), or any callable `R(R, R)` of your own.
#ifndef NDSHM_REDUCE_HPP
#define NDSHM_REDUCE_HPP

#include <type_traits>
#include <utility>

#include "detail/reduce_impl.hpp"
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
} // namespace ndshm

#endif // NDSHM_REDUCE_HPP
