/// @file detail/pool_invoke.hpp
/// The worker's side of each kind of pool task: decode the arguments, call the function, encode the
/// result. One invoker per call form (a plain call, a chunk of an array, map by chunks or by elements,
/// map_reduce into per-worker accumulators); a task carries its invoker's address beside the
/// function's, both valid in every worker.
#ifndef NDSHM_DETAIL_POOL_INVOKE_HPP
#define NDSHM_DETAIL_POOL_INVOKE_HPP

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <cereal/archives/binary.hpp>

#include "../error.hpp"
#include "array_handle.hpp"
#include "config.hpp"
#include "pool_codec.hpp"
#include "pool_worker.hpp"

namespace ndshm {

template <class T>
class chunk;

namespace detail {

template <class T>
struct is_chunk : std::false_type {
};
template <class T>
struct is_chunk<chunk<T>> : std::true_type {
};

/// The head of every chunk task: the range [first, last) it works on (rows along axis 0, or elements
/// for map by elements), followed by the arrays' handles.
struct map_head {
    std::uint64_t first = 0, last = 0;
};

inline map_head read_head(cereal::BinaryInputArchive& ar)
{
    map_head h;
    ar(h.first, h.last);
    return h;
}

/// Throws map's error for an element range that does not fit the arrays (`name`: the input's).
[[noreturn, gnu::cold]] NDSHM_DECL void raise_element_range(const std::string& name);
/// Throws map_reduce's error for a task that carries no accumulator for worker `mine`.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_no_accumulator(const std::string& name, std::size_t mine);

/// Rows [h.first, h.last) of `a`.
template <class X>
chunk<X> chunk_of(shared_ndarray<X> a, const map_head& h)
{
    return chunk<X>(std::move(a), static_cast<std::size_t>(h.first), static_cast<std::size_t>(h.last));
}

/// Calls `call()` and encodes its result into `out` (nothing if R is void).
template <class R, class Call>
void call_and_encode(Call&& call, std::string& out)
{
    if constexpr (std::is_void_v<R>) {
        call();
        out.clear();
    } else {
        R r = call();
        out = encode_result(r);
    }
}

/// Calls f with the tuple's elements, forwarded as the parameter types ask (by value, by reference).
template <class R, class... P, class Tuple, std::size_t... I>
R apply_forward(R (*f)(P...), Tuple& t, std::index_sequence<I...>)
{
    return f(std::forward<P>(std::get<I>(t))...);
}

template <class R, class... P>
void invoke_plain(std::uintptr_t fn, std::string_view payload, std::string& out)
{
    auto f = reinterpret_cast<R (*)(P...)>(fn);
    archive_reader in(payload);
    auto args = load_args<P...>(in.archive());
    call_and_encode<R>([&]() -> R { return apply_forward(f, args, std::index_sequence_for<P...>{}); }, out);
}

/// A task over rows [first, last) of an array: `R f(chunk<X>, P...)`.
template <class R, class X, class... P>
void invoke_scatter(std::uintptr_t fn, std::string_view payload, std::string& out)
{
    auto f = reinterpret_cast<R (*)(chunk<X>, P...)>(fn);
    archive_reader in(payload);
    cereal::BinaryInputArchive& ar = in.archive();
    const map_head h = read_head(ar);
    shared_ndarray<X> a = task_codec<shared_ndarray<X>>::load(ar);
    auto args = load_args<P...>(ar);
    chunk<X> c = chunk_of(std::move(a), h);
    auto call = [&](auto&... xs) -> R { return f(std::move(c), std::forward<P>(xs)...); };
    call_and_encode<R>([&]() -> R { return std::apply(call, args); }, out);
}

/// A chunk task of map: `void k(chunk<XI>, chunk<XO>, P...)` over rows [first, last) of both arrays.
template <class XI, class XO, class... P>
void invoke_map_chunks(std::uintptr_t fn, std::string_view payload, std::string& out)
{
    auto f = reinterpret_cast<void (*)(chunk<XI>, chunk<XO>, P...)>(fn);
    archive_reader in(payload);
    cereal::BinaryInputArchive& ar = in.archive();
    const map_head h = read_head(ar);
    shared_ndarray<XI> src = task_codec<shared_ndarray<XI>>::load(ar);
    shared_ndarray<XO> dst = task_codec<shared_ndarray<XO>>::load(ar);
    auto args = load_args<P...>(ar);
    chunk<XI> ci = chunk_of(std::move(src), h);
    chunk<XO> co = chunk_of(std::move(dst), h);
    std::apply([&](auto&... xs) { f(std::move(ci), std::move(co), std::forward<P>(xs)...); }, args);
    out.clear();
}

/// An element task of map: `out[i] = f(in[i], extra...)` for flat indices [first, last).
template <class R, class X, class TI, class TO, class... P>
void invoke_map_elements(std::uintptr_t fn, std::string_view payload, std::string& out)
{
    auto f = reinterpret_cast<R (*)(X, P...)>(fn);
    archive_reader reader(payload);
    cereal::BinaryInputArchive& ar = reader.archive();
    const map_head h = read_head(ar);
    const shared_ndarray<const TI> in = task_codec<shared_ndarray<const TI>>::load(ar);
    shared_ndarray<TO> dst = task_codec<shared_ndarray<TO>>::load(ar);
    auto args = load_args<P...>(ar);
    if (h.first > h.last || h.last > in.size() || in.size() != dst.size()) {
        raise_element_range(in.name());
    }
    const TI* src = in.data();
    TO* d = dst.data();
    std::apply(
        [&](auto&... xs) {
            for (auto i = static_cast<std::size_t>(h.first); i < static_cast<std::size_t>(h.last); ++i) {
                d[i] = static_cast<TO>(f(src[i], xs...));
            }
        },
        args);
    out.clear();
}

/// A task of map_reduce with reduce::add_into: `void f(chunk<X>, shared_ndarray<T>& partial, P...)` over rows
/// [first, last), adding into the worker's own partial accumulator.
template <class X, class T, class... P>
void invoke_accumulate(std::uintptr_t fn, std::string_view payload, std::string& out)
{
    auto f = reinterpret_cast<void (*)(chunk<X>, shared_ndarray<T>&, P...)>(fn);
    archive_reader in(payload);
    cereal::BinaryInputArchive& ar = in.archive();
    const map_head h = read_head(ar);
    shared_ndarray<X> a = task_codec<shared_ndarray<X>>::load(ar);
    // One accumulator per worker; this task adds into the one of the worker it runs on, so chunks go to
    // whichever worker is free and no accumulator is ever written by two processes.
    std::uint64_t count = 0;
    ar(count);
    const std::size_t mine = current_worker().info.index;
    if (count == 0 || mine >= count) {
        raise_no_accumulator(a.name(), mine);
    }
    shared_ndarray<T> partial;
    for (std::uint64_t i = 0; i < count; ++i) {
        auto p = task_codec<shared_ndarray<T>>::load(ar);
        if (i == mine) {
            partial = std::move(p);
        }
    }
    auto args = load_args<P...>(ar);
    chunk<X> c = chunk_of(std::move(a), h);
    std::apply([&](auto&... xs) { f(std::move(c), partial, std::forward<P>(xs)...); }, args);
    out.clear();
}

} // namespace detail
} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void raise_element_range(const std::string& name)
{
    raise<error>("map", name, "the task's element range does not fit the arrays",
                 "the arrays changed while the call ran", errno_code(EINVAL));
}

void raise_no_accumulator(const std::string& name, std::size_t mine)
{
    raise<error>("map_reduce", name, "the task has no accumulator for worker " + std::to_string(mine),
                 "report this as a bug in ndshm", errno_code(EINVAL));
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
