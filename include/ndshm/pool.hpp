/// @file pool.hpp
/// `ndshm::fork_pool`: a pool of persistent forked worker processes with broadcast, scatter, gather
/// and map over shared arrays; the C++ counterpart of a multiprocessing parallelizer.
#ifndef NDSHM_POOL_HPP
#define NDSHM_POOL_HPP

#ifdef _WIN32
#error                                                                                                                 \
    "ndshm/pool.hpp: fork_pool forks its workers, and Windows has no fork(). On Windows, share the arrays (shared_ndarray, share()) and hand their names to worker processes you start yourself (CreateProcess, std::system), or move them through an array_queue or a channel: both work across processes on Windows."
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "detail/pool_impl.hpp"
#include "detail/segment_impl.hpp"
#include "detail/sys.hpp"
#include "error.hpp"
#include "reduce.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

/// Items [first, last) along axis 0 of a shared array: the part of it one task works on. Indices are
/// relative to the chunk: `c(0, j)` is row `first()` of the array. `array()` is the whole array.
template <class T>
class chunk {
public:
    /// What view() returns: an xt::xview of the whole array's view with a range on axis 0.
    using view_type = decltype(xt::view(std::declval<typename shared_ndarray<T>::view_type>(),
                                        xt::range(std::ptrdiff_t(), std::ptrdiff_t())));

    chunk() = default;
    /// Rows [first, last) of `a`.
    /// @throws error if the range does not lie inside axis 0 of `a`
    chunk(shared_ndarray<T> a, std::size_t first, std::size_t last)
        : m_array(std::move(a)), m_first(first), m_last(last)
    {
        const std::size_t n = m_array.dimension() == 0 ? 0 : m_array.shape()[0];
        if (first > last || last > n) {
            detail::raise<error>("chunk of", m_array.name(),
                                 "rows [" + std::to_string(first) + ", " + std::to_string(last) +
                                     ") do not lie inside axis 0 (length " + std::to_string(n) + ")",
                                 "pass 0 <= first <= last <= shape()[0]", detail::errno_code(EINVAL));
        }
    }

    /// The first row, in the whole array's numbering.
    std::size_t first() const noexcept { return m_first; }
    /// One past the last row, in the whole array's numbering.
    std::size_t last() const noexcept { return m_last; }
    /// Number of rows (axis-0 items) in the chunk.
    std::size_t size() const noexcept { return m_last - m_first; }
    bool empty() const noexcept { return m_first == m_last; }
    /// The chunk's shape: the array's, with shape()[0] == size().
    shape_type shape() const
    {
        shape_type s = m_array.shape();
        if (!s.empty()) {
            s[0] = size();
        }
        return s;
    }
    /// The whole array.
    const shared_ndarray<T>& array() const noexcept { return m_array; }

    /// Element (first() + i, rest...) of the array.
    template <class... Idx>
    T& operator()(std::size_t i, Idx... rest)
    {
        return m_array(m_first + i, rest...);
    }
    template <class... Idx>
    const T& operator()(std::size_t i, Idx... rest) const
    {
        return m_array(m_first + i, rest...);
    }

    /// An xtensor view of the chunk's rows (no copy; C or Fortran order alike): `xt::view` of the whole
    /// array's view() with a range on axis 0.
    view_type view() const
    {
        return xt::view(const_cast<shared_ndarray<T>&>(m_array).view(),
                        xt::range(static_cast<std::ptrdiff_t>(m_first), static_cast<std::ptrdiff_t>(m_last)));
    }

private:
    shared_ndarray<T> m_array;
    std::size_t m_first = 0;
    std::size_t m_last = 0;
};

/// Which worker of a fork_pool the calling code runs in: `in_worker` is false outside of tasks.
inline worker_info this_worker() noexcept { return detail::current_worker().info; }

namespace detail {

template <class T>
struct is_chunk : std::false_type {
};
template <class T>
struct is_chunk<chunk<T>> : std::true_type {
};

/// The call operator of a lambda (or other class) as a plain function type, if it has exactly one that
/// is not a template.
template <class M>
struct call_signature {
};
template <class C, class R, class... P>
struct call_signature<R (C::*)(P...) const> {
    using pointer = R (*)(P...);
};
template <class C, class R, class... P>
struct call_signature<R (C::*)(P...) const noexcept> {
    using pointer = R (*)(P...);
};
template <class C, class R, class... P>
struct call_signature<R (C::*)(P...)> {
    using pointer = R (*)(P...);
};
template <class C, class R, class... P>
struct call_signature<R (C::*)(P...) noexcept> {
    using pointer = R (*)(P...);
};

template <class F, class = void>
struct lambda_pointer {
};
template <class F>
struct lambda_pointer<F, std::void_t<typename call_signature<decltype(&F::operator())>::pointer>> {
    using type = typename call_signature<decltype(&F::operator())>::pointer;
};

template <class F, class = void>
inline constexpr bool has_lambda_pointer = false;
template <class F>
inline constexpr bool has_lambda_pointer<F, std::void_t<typename lambda_pointer<F>::type>> = true;

/// A captureless lambda as the plain function pointer a pool task is made of (the same code address in
/// every forked worker). A lambda that captures is refused at compile time: its captures live in the
/// calling process only.
template <class F>
auto task_function(const F& f)
{
    static_assert(has_lambda_pointer<F>,
                  "ndshm: a pool takes a function or a lambda with one call operator whose parameters have "
                  "types (not auto), so that it knows how to send the arguments to a worker");
    if constexpr (has_lambda_pointer<F>) {
        using pointer = typename lambda_pointer<F>::type;
        static_assert(std::is_convertible_v<const F&, pointer>,
                      "ndshm: this lambda captures variables, but a task runs in another process "
                      "where they do not exist; pass them as arguments after the function (they are sent "
                      "to the worker), or use a lambda with an empty capture list []");
        if constexpr (std::is_convertible_v<const F&, pointer>) {
            return static_cast<pointer>(f);
        }
    }
}

template <class F>
using if_lambda = std::enable_if_t<std::is_class_v<std::decay_t<F>>>;

/// Reads a (first, last) range and two array handles, the head of every map task.
struct map_head {
    std::uint64_t first = 0, last = 0;
};

template <class R>
std::string encode_result(R& r)
{
    return encode([&](cereal::BinaryOutputArchive& ar) { save_result(ar, r); });
}

template <class R>
R decode_result(std::string_view bytes)
{
    try {
        memory_buf buf(bytes);
        std::istream is(&buf);
        cereal::BinaryInputArchive ar(is);
        return task_codec<R>::load(ar);
    } catch (const cereal::Exception& e) {
        raise<serialization_error>("decode a task's result", "", std::string("cereal: ") + e.what(),
                                   "check that the result type's serialize() reads what it writes",
                                   make_error_code(errc::serialization));
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
    memory_buf buf(payload);
    std::istream is(&buf);
    cereal::BinaryInputArchive ar(is);
    auto args = load_args<P...>(ar);
    if constexpr (std::is_void_v<R>) {
        apply_forward(f, args, std::index_sequence_for<P...>{});
        out.clear();
    } else {
        R r = apply_forward(f, args, std::index_sequence_for<P...>{});
        out = encode_result(r);
    }
}

/// A task over rows [first, last) of an array: `R f(chunk<X>, P...)`.
template <class R, class X, class... P>
void invoke_scatter(std::uintptr_t fn, std::string_view payload, std::string& out)
{
    auto f = reinterpret_cast<R (*)(chunk<X>, P...)>(fn);
    memory_buf buf(payload);
    std::istream is(&buf);
    cereal::BinaryInputArchive ar(is);
    map_head h;
    ar(h.first, h.last);
    shared_ndarray<X> a = task_codec<shared_ndarray<X>>::load(ar);
    auto args = load_args<P...>(ar);
    chunk<X> c(std::move(a), static_cast<std::size_t>(h.first), static_cast<std::size_t>(h.last));
    auto call = [&](auto&... xs) -> R { return f(std::move(c), std::forward<P>(xs)...); };
    if constexpr (std::is_void_v<R>) {
        std::apply(call, args);
        out.clear();
    } else {
        R r = std::apply(call, args);
        out = encode_result(r);
    }
}

/// A chunk task of map: `void k(chunk<XI>, chunk<XO>, P...)` over rows [first, last) of both arrays.
template <class XI, class XO, class... P>
void invoke_map_chunks(std::uintptr_t fn, std::string_view payload, std::string& out)
{
    auto f = reinterpret_cast<void (*)(chunk<XI>, chunk<XO>, P...)>(fn);
    memory_buf buf(payload);
    std::istream is(&buf);
    cereal::BinaryInputArchive ar(is);
    map_head h;
    ar(h.first, h.last);
    shared_ndarray<XI> in = task_codec<shared_ndarray<XI>>::load(ar);
    shared_ndarray<XO> dst = task_codec<shared_ndarray<XO>>::load(ar);
    auto args = load_args<P...>(ar);
    const auto first = static_cast<std::size_t>(h.first), last = static_cast<std::size_t>(h.last);
    chunk<XI> ci(std::move(in), first, last);
    chunk<XO> co(std::move(dst), first, last);
    std::apply([&](auto&... xs) { f(std::move(ci), std::move(co), std::forward<P>(xs)...); }, args);
    out.clear();
}

/// An element task of map: `out[i] = f(in[i], extra...)` for flat indices [first, last).
template <class R, class X, class TI, class TO, class... P>
void invoke_map_elements(std::uintptr_t fn, std::string_view payload, std::string& out)
{
    auto f = reinterpret_cast<R (*)(X, P...)>(fn);
    memory_buf buf(payload);
    std::istream is(&buf);
    cereal::BinaryInputArchive ar(is);
    map_head h;
    ar(h.first, h.last);
    const shared_ndarray<const TI> in = task_codec<shared_ndarray<const TI>>::load(ar);
    shared_ndarray<TO> dst = task_codec<shared_ndarray<TO>>::load(ar);
    auto args = load_args<P...>(ar);
    if (h.first > h.last || h.last > in.size() || in.size() != dst.size()) {
        raise<error>("map", in.name(), "the task's element range does not fit the arrays",
                     "the arrays changed while the call ran", errno_code(EINVAL));
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
    memory_buf buf(payload);
    std::istream is(&buf);
    cereal::BinaryInputArchive ar(is);
    map_head h;
    ar(h.first, h.last);
    shared_ndarray<X> a = task_codec<shared_ndarray<X>>::load(ar);
    // One accumulator per worker; this task adds into the one of the worker it runs on, so chunks go to
    // whichever worker is free and no accumulator is ever written by two processes.
    std::uint64_t count = 0;
    ar(count);
    const std::size_t mine = current_worker().info.index;
    if (count == 0 || mine >= count) {
        raise<error>("map_reduce", a.name(), "the task has no accumulator for worker " + std::to_string(mine),
                     "report this as a bug in ndshm", errno_code(EINVAL));
    }
    shared_ndarray<T> partial;
    for (std::uint64_t i = 0; i < count; ++i) {
        auto p = task_codec<shared_ndarray<T>>::load(ar);
        if (i == mine) {
            partial = std::move(p);
        }
    }
    auto args = load_args<P...>(ar);
    chunk<X> c(std::move(a), static_cast<std::size_t>(h.first), static_cast<std::size_t>(h.last));
    std::apply([&](auto&... xs) { f(std::move(c), partial, std::forward<P>(xs)...); }, args);
    out.clear();
}

/// Blocks SIGPIPE in this thread for a scope, so that writing to a dead worker's pipe fails with
/// EPIPE instead of killing the parent; a SIGPIPE caused meanwhile is discarded, one that was
/// pending before is left alone.
class sigpipe_block {
public:
    sigpipe_block() noexcept
    {
        sigemptyset(&m_set);
        sigaddset(&m_set, SIGPIPE);
        sigset_t pending;
        sigemptyset(&pending);
        (void)sigpending(&pending);
        m_was_pending = sigismember(&pending, SIGPIPE) == 1;
        m_active = pthread_sigmask(SIG_BLOCK, &m_set, &m_old) == 0;
    }
    sigpipe_block(const sigpipe_block&) = delete;
    sigpipe_block& operator=(const sigpipe_block&) = delete;
    ~sigpipe_block()
    {
        if (!m_active) {
            return;
        }
        if (!m_was_pending) {
            sigset_t pending;
            sigemptyset(&pending);
            if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
                const struct timespec zero {
                };
                (void)sigtimedwait(&m_set, nullptr, &zero);
            }
        }
        (void)pthread_sigmask(SIG_SETMASK, &m_old, nullptr);
    }

private:
    sigset_t m_set;
    sigset_t m_old;
    bool m_was_pending = false;
    bool m_active = false;
};

} // namespace detail

namespace detail {

/// The call set that fork_pool and ndshm::mpi::pool share: run, broadcast, gather, scatter, scatterv,
/// map (over items, elementwise, by chunks) and map_reduce. `Pool` provides size(), concurrency() and
/// `execute(op, tasks, on_result)`, which runs the tasks and reports each result; a pool whose tasks
/// may run where the caller's segments cannot be attached sets `records_arrays`, and each task then
/// lists the arrays it refers to and the part of each it works on (task::arrays).
template <class Pool>
class pool_calls {
public:
    /// Every call also takes a lambda with an empty capture list in place of a function (a task runs in
    /// another process, so a lambda that captures is refused at compile time, with a message).
    template <class F, class... A, class = detail::if_lambda<F>>
    decltype(auto) run(const F& f, A&&... args)
    {
        return run(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = detail::if_lambda<F>>
    void broadcast(const F& f, A&&... args)
    {
        broadcast(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = detail::if_lambda<F>>
    auto gather(const F& f, A&&... args)
    {
        return gather(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = detail::if_lambda<F>>
    decltype(auto) scatter(const F& f, A&&... args)
    {
        return scatter(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = detail::if_lambda<F>>
    decltype(auto) scatterv(const F& f, A&&... args)
    {
        return scatterv(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = detail::if_lambda<F>>
    decltype(auto) map(const F& f, A&&... args)
    {
        return map(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = detail::if_lambda<F>>
    decltype(auto) map_reduce(const F& f, A&&... args)
    {
        return map_reduce(detail::task_function(f), std::forward<A>(args)...);
    }

    /// Runs f(args...) on one worker and returns its result.
    /// @throws the task's exception type (see the class comment), or error if its worker died
    template <class R, class... P, class... A>
    R run(R (*f)(P...), A&&... args)
    {
        std::vector<task> tasks(1);
        tasks[0] = plain_task(f, std::forward<A>(args)...);
        if constexpr (std::is_void_v<R>) {
            self().execute("run", tasks, nullptr);
        } else {
            std::optional<R> result;
            self().execute("run", tasks,
                           [&](std::size_t, std::string_view bytes) { result.emplace(decode_result<R>(bytes)); });
            return std::move(*result);
        }
    }

    /// Calls f(args...) once on every worker, with the same arguments: the way to give every worker the
    /// same value (for example to set up state that later tasks use).
    /// @throws as run()
    template <class R, class... P, class... A>
    void broadcast(R (*f)(P...), A&&... args)
    {
        std::vector<task> tasks(self().concurrency(), plain_task(f, std::forward<A>(args)...));
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            tasks[i].worker = static_cast<long>(i);
        }
        self().execute("broadcast", tasks, nullptr);
    }

    /// Calls f(args...) once on every worker and returns the results, result i from worker i.
    /// @throws as run()
    template <class R, class... P, class... A>
    std::vector<R> gather(R (*f)(P...), A&&... args)
    {
        static_assert(!std::is_void_v<R>, "gather collects results: pass a function that returns one (or use "
                                          "broadcast)");
        std::vector<task> tasks(self().concurrency(), plain_task(f, std::forward<A>(args)...));
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            tasks[i].worker = static_cast<long>(i);
        }
        return collect<R>("gather", tasks);
    }

    /// Splits axis 0 of `a` into concurrency() chunks of sizes that differ by at most one, the larger
    /// ones first as numpy.array_split does (some are empty if there are fewer rows than workers);
    /// worker i calls f(chunk i, args...). Returns the results, result i from chunk i (nothing if f
    /// returns void).
    /// @throws as run()
    template <class R, class X, class... P, class T, class... A>
    auto scatter(R (*f)(chunk<X>, P...), const shared_ndarray<T>& a, A&&... args)
    {
        const std::size_t n = rows_of(a), k = self().concurrency();
        std::vector<std::size_t> counts(k);
        for (std::size_t i = 0; i < k; ++i) {
            counts[i] = n / k + (i < n % k ? 1 : 0); // as numpy.array_split: the larger chunks first
        }
        return scatterv(f, a, counts, std::forward<A>(args)...);
    }

    /// Like scatter, with chunk sizes of your choosing (uneven, or more chunks than workers): chunk i
    /// has counts[i] rows and runs on worker i % concurrency(). The counts must add up to shape()[0].
    /// @throws error if they do not; otherwise as run()
    template <class R, class X, class... P, class T, class... A>
    auto scatterv(R (*f)(chunk<X>, P...), const shared_ndarray<T>& a, const std::vector<std::size_t>& counts,
                  A&&... args)
    {
        check_same_type<X, T>("scatter");
        std::size_t total = 0;
        for (const std::size_t c : counts) {
            total += c;
        }
        if (total != rows_of(a) || counts.empty()) {
            raise<error>("scatter", a.name(),
                         "the chunk sizes add up to " + std::to_string(total) + ", but axis 0 has " +
                             std::to_string(rows_of(a)) + " rows",
                         "pass at least one size, and sizes that add up to shape()[0]", errno_code(EINVAL));
        }
        const shared_ndarray<X> ax = a;
        std::vector<task> tasks(counts.size());
        std::size_t first = 0;
        const encoded extra = encode_args<P...>(std::forward<A>(args)...);
        for (std::size_t i = 0; i < counts.size(); ++i) {
            tasks[i].invoke = &invoke_scatter<R, X, P...>;
            tasks[i].fn = reinterpret_cast<std::uintptr_t>(f);
            set_args(tasks[i], range_head(true, first, first + counts[i], ax), extra);
            tasks[i].worker = static_cast<long>(i % self().concurrency());
            first += counts[i];
        }
        if constexpr (std::is_void_v<R>) {
            self().execute("scatter", tasks, nullptr);
        } else {
            return collect<R>("scatter", tasks);
        }
    }

    /// Calls f(item, args...) for each item, spread over the workers; returns the results in order.
    /// @throws as run(), once every task already started has finished
    template <class R, class X, class... P, class V, class... A>
    std::vector<R> map(R (*f)(X, P...), const std::vector<V>& items, A&&... args)
    {
        static_assert(!std::is_void_v<R>, "map over items collects results: pass a function that returns one");
        const encoded extra = encode_args<P...>(std::forward<A>(args)...);
        std::vector<task> tasks(items.size());
        for (std::size_t i = 0; i < items.size(); ++i) {
            tasks[i].invoke = &invoke_plain<R, X, P...>;
            tasks[i].fn = reinterpret_cast<std::uintptr_t>(f);
            set_args(tasks[i], encode_args<X>(items[i]), extra);
        }
        return collect<R>("map", tasks);
    }

    /// Sets out[i] = f(in[i], args...) for every element i, the work split into contiguous pieces
    /// spread over the workers. `in` and `out` must have the same shape and memory order.
    /// @throws error if they do not; otherwise as run(), once every task already started has finished
    template <class R, class X, class... P, class TI, class TO, class... A,
              class = std::enable_if_t<!is_chunk<std::decay_t<X>>::value>>
    void map(R (*f)(X, P...), const shared_ndarray<TI>& in, shared_ndarray<TO>& out, A&&... args)
    {
        static_assert(!std::is_const_v<TO>, "map writes into `out`: pass a writable shared_ndarray<T>");
        static_assert(!std::is_void_v<R>, "map writes f's result into `out`: f must return a value");
        static_assert((!std::is_rvalue_reference_v<P> && ...),
                      "map calls f once per element: its extra parameters cannot be rvalue references");
        if (in.shape() != out.shape() || in.fortran_order() != out.fortran_order()) {
            raise<error>("map", in.name() + "' -> '" + out.name(), "the arrays differ in shape or memory order",
                         "pass arrays of the same shape and order, or use a chunk kernel", errno_code(EINVAL));
        }
        using I = std::remove_const_t<TI>;
        const encoded extra = encode_args<P...>(std::forward<A>(args)...);
        const shared_ndarray<const I> cin = in;
        std::vector<task> tasks;
        for (const auto& r : pieces(in.size())) {
            task t;
            t.invoke = &invoke_map_elements<R, X, I, TO, P...>;
            t.fn = reinterpret_cast<std::uintptr_t>(f);
            set_args(t, range_head(false, r.first, r.second, cin, out), extra);
            tasks.push_back(std::move(t));
        }
        self().execute("map", tasks, nullptr);
    }

    /// Calls kernel(chunk of in, the same rows of out, args...) for axis-0 chunks of `in` and `out`,
    /// spread over the workers (a few chunks per worker, so that uneven work evens out). The arrays must
    /// have the same length along axis 0; their other dimensions may differ.
    /// @throws error if they do not; otherwise as run(), once every task already started has finished
    template <class XI, class XO, class... P, class TI, class TO, class... A>
    void map(void (*kernel)(chunk<XI>, chunk<XO>, P...), const shared_ndarray<TI>& in, shared_ndarray<TO>& out,
             A&&... args)
    {
        check_same_type<XI, TI>("map");
        check_same_type<XO, TO>("map");
        if (rows_of(in) != rows_of(out)) {
            raise<error>("map", in.name() + "' -> '" + out.name(),
                         "the arrays differ in length along axis 0 (" + std::to_string(rows_of(in)) + " and " +
                             std::to_string(rows_of(out)) + ")",
                         "pass arrays with the same number of rows", errno_code(EINVAL));
        }
        const encoded extra = encode_args<P...>(std::forward<A>(args)...);
        const shared_ndarray<XI> xin = in;
        const shared_ndarray<XO> xout = out;
        std::vector<task> tasks;
        for (const auto& r : pieces(rows_of(in))) {
            task t;
            t.invoke = &invoke_map_chunks<XI, XO, P...>;
            t.fn = reinterpret_cast<std::uintptr_t>(kernel);
            set_args(t, range_head(true, r.first, r.second, xin, xout), extra);
            tasks.push_back(std::move(t));
        }
        self().execute("map", tasks, nullptr);
    }

    /// Map-reduce over axis 0 of `a`: f(chunk, args...) runs on a few chunks per worker (so that uneven
    /// work evens out), and the results are combined in chunk order by `reducer`:
    /// - `reduce::sum`, `reduce::minimum`, `reduce::maximum`: numbers or values with `+` / `<`, or
    ///   shared_ndarray results of one shape (combined elementwise into the first chunk's array);
    /// - `reduce::concatenate`: std::vector results appended, or shared_ndarray results joined along
    ///   axis 0 into a new array;
    /// - `reduce::none`: f's results (if any) are dropped, the call returns nothing;
    /// - any callable `R g(R, R)`: a left fold, run in the calling process (so it may capture);
    /// - `reduce::add_into(acc)`: f has the form `void f(chunk<X>, shared_ndarray<T>& partial, P...)`;
    ///   each worker adds into its own zeroed accumulator of acc's shape in shared memory (chunks go to
    ///   whichever worker is free; a task adds into the accumulator of the worker it runs on), and the call
    ///   adds those into `acc`. Nothing but the chunk bounds travels through the pipes.
    /// An array with no rows gives f one empty chunk, so f decides what an empty reduction is.
    /// @throws error if the results cannot be combined (shapes differ); otherwise as run(), once every
    ///   task already started has finished
    template <class R, class X, class... P, class T, class Reducer, class... A>
    auto map_reduce(R (*f)(chunk<X>, P...), const shared_ndarray<T>& a, const Reducer& reducer, A&&... args)
    {
        check_same_type<X, T>("map_reduce");
        static_assert(!is_add_into<Reducer>::value,
                      "reduce::add_into(acc) calls f(chunk, partial accumulator, ...): declare f as "
                      "void f(ndshm::chunk<X>, ndshm::shared_ndarray<T>& partial, ...)");
        const shared_ndarray<X> ax = a;
        const encoded extra = encode_args<P...>(std::forward<A>(args)...);
        std::vector<task> tasks;
        for (const auto& r : chunk_ranges(rows_of(a))) {
            task t;
            t.invoke = &invoke_scatter<R, X, P...>;
            t.fn = reinterpret_cast<std::uintptr_t>(f);
            set_args(t, range_head(true, r.first, r.second, ax), extra);
            tasks.push_back(std::move(t));
        }
        if constexpr (std::is_same_v<Reducer, reduce::none_t> || std::is_void_v<R>) {
            static_assert(std::is_same_v<Reducer, reduce::none_t>,
                          "f returns nothing, so there is nothing to reduce: pass reduce::none (or "
                          "reduce::add_into with an accumulator parameter)");
            self().execute("map_reduce", tasks, nullptr);
        } else {
            std::vector<R> results = collect<R>("map_reduce", tasks);
            if constexpr (std::is_same_v<Reducer, reduce::concatenate_t>) {
                static_assert(is_std_vector<R>::value || is_shared_ndarray<R>::value,
                              "reduce::concatenate joins std::vector or shared_ndarray results");
                return concatenate_results(results);
            } else {
                static_assert(std::is_same_v<Reducer, reduce::sum_t> || std::is_same_v<Reducer, reduce::minimum_t> ||
                                  std::is_same_v<Reducer, reduce::maximum_t> ||
                                  std::is_invocable_r_v<R, const Reducer&, R&&, R&&>,
                              "the reducer must be reduce::sum, minimum, maximum, concatenate, none, "
                              "add_into(acc), or a callable R(R, R)");
                return fold_results(results, reducer);
            }
        }
    }

    /// map_reduce with `reduce::add_into(acc)`: see the other overload.
    template <class X, class... P, class T, class U, class... A>
    void map_reduce(void (*f)(chunk<X>, shared_ndarray<U>&, P...), const shared_ndarray<T>& a,
                    const reduce::add_into_t<U>& into, A&&... args)
    {
        check_same_type<X, T>("map_reduce");
        const shared_ndarray<U>& acc = into.acc;
        if (acc.empty()) {
            raise<error>("map_reduce", "", "the accumulator is an empty handle",
                         "pass reduce::add_into(a shared_ndarray that holds an array)", errno_code(EINVAL));
        }
        const std::vector<std::size_t> shape(acc.shape().begin(), acc.shape().end());
        std::vector<shared_ndarray<U>> partials;
        for (std::size_t w = 0; w < self().concurrency(); ++w) {
            partials.push_back(shared_ndarray<U>::create(shape)); // zero-filled, as fresh segments are
        }
        const shared_ndarray<X> ax = a;
        encoded extra = record([&](cereal::BinaryOutputArchive& ar) {
            ar(static_cast<std::uint64_t>(partials.size()));
            for (const auto& p : partials) {
                task_codec<shared_ndarray<U>>::save(ar, p);
            }
        });
        for (std::size_t w = 0; w < extra.arrays.size(); ++w) {
            extra.arrays[w].only_for = static_cast<long>(w); // each worker adds into its own accumulator
        }
        encoded rest = encode_args<P...>(std::forward<A>(args)...);
        extra.bytes += rest.bytes;
        extra.arrays.insert(extra.arrays.end(), rest.arrays.begin(), rest.arrays.end());
        std::vector<task> tasks;
        for (const auto& r : chunk_ranges(rows_of(a))) {
            task t;
            t.invoke = &invoke_accumulate<X, U, P...>;
            t.fn = reinterpret_cast<std::uintptr_t>(f);
            set_args(t, range_head(true, r.first, r.second, ax), extra);
            tasks.push_back(std::move(t));
        }
        self().execute("map_reduce", tasks, nullptr);
        shared_ndarray<U> out = acc;
        for (const auto& p : partials) {
            out.view() += p.view();
        }
    }

protected:
    pool_calls() = default;
    ~pool_calls() = default;

    using result_fn = std::function<void(std::size_t, std::string_view)>;

private:
    /// Encoded arguments, and (for a pool that records them) the arrays they name.
    struct encoded {
        std::string bytes;
        std::vector<task_array> arrays;
    };

    Pool& self() noexcept { return static_cast<Pool&>(*this); }
    const Pool& self() const noexcept { return static_cast<const Pool&>(*this); }

    template <class X, class T>
    static void check_same_type(const char* op)
    {
        static_assert(std::is_same_v<std::remove_const_t<X>, std::remove_const_t<T>>,
                      "the function's chunk<X> must have the array's element type");
        static_assert(!std::is_const_v<T> || std::is_const_v<X>,
                      "a function that takes chunk<T> (writable) needs a writable shared_ndarray<T>");
        (void)op;
    }

    template <class T>
    static std::size_t rows_of(const shared_ndarray<T>& a) noexcept
    {
        return a.empty() || a.dimension() == 0 ? 0 : a.shape()[0];
    }

    /// Splits [0, n) into a few ranges per worker.
    std::vector<std::pair<std::size_t, std::size_t>> pieces(std::size_t n) const
    {
        const std::size_t k = std::min<std::size_t>(n, self().size() == 0 ? 1 : 4 * self().size());
        std::vector<std::pair<std::size_t, std::size_t>> r;
        for (std::size_t i = 0; i < k; ++i) {
            r.emplace_back(i * n / k, (i + 1) * n / k);
        }
        return r;
    }

    /// pieces(n), with one empty range for an array with no rows.
    std::vector<std::pair<std::size_t, std::size_t>> chunk_ranges(std::size_t n) const
    {
        auto r = pieces(n);
        if (r.empty()) {
            r.emplace_back(0, 0);
        }
        return r;
    }

    /// Encodes with `f(ar)`, noting the arrays it names if the pool records them.
    template <class F>
    static encoded record(F&& f)
    {
        encoded e;
        if constexpr (Pool::records_arrays) {
            array_recorder rec;
            array_recorder* const saved = std::exchange(current_array_recorder(), &rec);
            struct restore {
                array_recorder* saved;
                ~restore() { current_array_recorder() = saved; }
            } r{saved};
            e.bytes = encode(std::forward<F>(f));
            e.arrays = std::move(rec.arrays);
        } else {
            e.bytes = encode(std::forward<F>(f));
        }
        return e;
    }

    template <class... P, class... A>
    static encoded encode_args(A&&... args)
    {
        try {
            return record([&](cereal::BinaryOutputArchive& ar) { save_args<P...>(ar, std::forward<A>(args)...); });
        } catch (const cereal::Exception& e) {
            raise<serialization_error>("encode a task's arguments", "", std::string("cereal: ") + e.what(),
                                       "check the argument types' serialize()", make_error_code(errc::serialization));
        }
    }

    /// The head of a chunk task: [first, last) and the arrays. `rows`: the range counts rows along axis 0
    /// (else elements), and the task works on that part of each array only, which no other task writes.
    template <class... Arrays>
    static encoded range_head(bool rows, std::size_t first, std::size_t last, const Arrays&... arrays)
    {
        encoded e = record([&](cereal::BinaryOutputArchive& ar) {
            ar(static_cast<std::uint64_t>(first), static_cast<std::uint64_t>(last));
            (task_codec<std::decay_t<Arrays>>::save(ar, arrays), ...);
        });
        for (task_array& t : e.arrays) {
            const std::size_t count = t.shape.empty() ? 1 : (rows ? t.shape[0] : product_of(t.shape));
            if (count == 0 || (rows && t.fortran && t.shape.size() > 1)) {
                continue; // a Fortran-order array's rows are not contiguous: the task gets all of it
            }
            const std::size_t unit = t.nbytes / count;
            t.first = first * unit;
            t.bytes = (last - first) * unit;
            t.exclusive = true;
        }
        return e;
    }

    static std::size_t product_of(const std::vector<std::size_t>& s) noexcept
    {
        std::size_t n = 1;
        for (const std::size_t d : s) {
            n *= d;
        }
        return n;
    }

    static void set_args(task& t, const encoded& head, const encoded& extra)
    {
        t.args = head.bytes + extra.bytes;
        if constexpr (Pool::records_arrays) {
            t.arrays = head.arrays;
            t.arrays.insert(t.arrays.end(), extra.arrays.begin(), extra.arrays.end());
        }
    }

    template <class R, class... P, class... A>
    static task plain_task(R (*f)(P...), A&&... args)
    {
        task t;
        t.invoke = &invoke_plain<R, P...>;
        t.fn = reinterpret_cast<std::uintptr_t>(f);
        set_args(t, encoded{}, encode_args<P...>(std::forward<A>(args)...));
        return t;
    }

    template <class R>
    std::vector<R> collect(const char* op, std::vector<task>& tasks)
    {
        std::vector<std::optional<R>> got(tasks.size());
        self().execute(op, tasks,
                       [&](std::size_t i, std::string_view bytes) { got[i].emplace(decode_result<R>(bytes)); });
        std::vector<R> out;
        out.reserve(got.size());
        for (auto& g : got) {
            out.push_back(std::move(*g));
        }
        return out;
    }
};

/// Runs the tasks one after the other in the calling process, as worker 0 of 1 (a pool without workers).
inline void run_tasks_in_process(const char* op, std::vector<task>& tasks,
                                 const std::function<void(std::size_t, std::string_view)>& on_result)
{
    worker_state& w = current_worker();
    const worker_state saved = w;
    w.info = worker_info{true, 0, 1};
    w.parent = this_process();
    struct restore {
        worker_state& w;
        worker_state saved;
        ~restore() { w = saved; }
    } r{w, saved};
    std::string out;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        bool ok = true;
        task_failure f;
        try {
            out.clear();
            tasks[i].invoke(tasks[i].fn, tasks[i].args, out);
        } catch (...) {
            ok = false;
            f = describe_current_exception();
        }
        if (!ok) {
            rethrow_failure(op, 0, static_cast<long>(::getpid()), true, f);
        }
        if (on_result) {
            on_result(i, out);
        }
    }
}

} // namespace detail

/// A pool of `n` worker processes, forked once when the pool is made and reused for every call.
///
/// Work is a plain function (a function pointer: code addresses are the same in every fork) and
/// arguments that cereal serialises (binary archive); `shared_ndarray` arguments travel as handles
/// (their names), and the worker attaches them (read-only for `shared_ndarray<const T>`). A task may
/// return a value the same way; a returned `shared_ndarray` that the worker created is handed over to
/// the caller, who then owns it.
///
/// - `run(f, args...)`: one task on one worker, returns f's result.
/// - `map(f, items, args...)`: f(item, args...) for each element of a vector, spread over the workers.
/// - `map(f, in, out, args...)`: `out[i] = f(in[i], args...)` for every element (same shape and order).
/// - `map(kernel, in, out, args...)`: `kernel(chunk<const TI>, chunk<TO>, args...)` for axis-0 chunks.
/// - `scatter(f, a, args...)`: worker i calls f(chunk i of a, args...); returns each result.
/// - `gather(f, args...)`: every worker calls f(args...); returns their results in worker order.
/// - `broadcast(f, args...)`: every worker calls f(args...) with the same arguments (to set up state).
///
/// If a task throws, the call throws in the caller the same ndshm exception type (ndshm::error for
/// other exceptions) with the worker's message, after the tasks already started have finished. If a
/// worker dies (abort, SIGSEGV, kill -9, exit), the call throws ndshm::error naming the worker and the
/// signal, and the pool forks a replacement; state that broadcast gave the dead worker is not restored.
///
/// `fork_pool pool(0)` runs the same API in the calling process, one task after the other.
///
/// Calls are serialised (one at a time, whatever the thread). Create the pool before starting threads:
/// a fork copies only the calling thread. Only the process that created the pool may use it; its
/// destructor stops and reaps every worker.
class fork_pool : public detail::pool_calls<fork_pool> {
public:
    /// Forks `workers` worker processes (none for 0: everything then runs in the calling process).
    /// @throws error if a pipe or a fork fails (the workers already forked are stopped again)
    explicit fork_pool(std::size_t workers) : m_creator(::getpid()), m_slots(workers)
    {
        (void)pthread_sigmask(SIG_SETMASK, nullptr, &m_mask);
        try {
            for (std::size_t i = 0; i < workers; ++i) {
                spawn(i);
            }
        } catch (...) {
            shutdown();
            throw;
        }
    }

    fork_pool(const fork_pool&) = delete;
    fork_pool& operator=(const fork_pool&) = delete;

    /// Stops every worker (an idle one is told to exit, one still busy is killed) and reaps it. In a
    /// forked child of the creating process it does nothing.
    ~fork_pool() { shutdown(); }

    /// Number of worker processes (0 for a serial pool).
    std::size_t size() const noexcept { return m_slots.size(); }
    /// Number of workers that calls spread over: size(), or 1 for a serial pool.
    std::size_t concurrency() const noexcept { return std::max<std::size_t>(1, m_slots.size()); }
    /// The current workers' process ids (a replaced worker has a new one). Empty for a serial pool.
    std::vector<long> pids() const
    {
        std::vector<long> p;
        for (const auto& s : m_slots) {
            p.push_back(static_cast<long>(s.pid));
        }
        return p;
    }

private:
    /// A task sent to a worker.
    struct sent {
        std::uint64_t id;  // frame id
        std::size_t index; // index in the call's task list
        std::size_t bytes; // frame size
    };

    /// A worker: its process and the parent's ends of its two pipes.
    struct slot {
        pid_t pid = -1;
        detail::fd_guard to;   // parent -> worker: tasks
        detail::fd_guard from; // worker -> parent: results
        std::size_t pipe_capacity = 4096;
        std::deque<sent> inflight; // tasks sent and not yet answered, oldest first
        std::size_t inflight_bytes = 0;
    };

    friend class detail::pool_calls<fork_pool>;
    /// Tasks name the caller's segments, which every worker attaches: nothing to record.
    static constexpr bool records_arrays = false;

    // ---- execution ------------------------------------------------------------------------------

    void check_creator(const char* op) const
    {
        if (::getpid() != m_creator) {
            detail::raise<error>(op, "", "a fork_pool can only be used by the process that created it",
                                 "create a pool in this process (for example inside the task)",
                                 detail::errno_code(EPERM));
        }
    }

    /// Runs every task; calls on_result(index, bytes) for each result. Throws the first failure.
    void execute(const char* op, std::vector<detail::task>& tasks, const result_fn& on_result)
    {
        check_creator(op);
        std::lock_guard<std::mutex> call(m_call);
        if (m_slots.empty()) {
            detail::run_tasks_in_process(op, tasks, on_result);
        } else {
            execute_parallel(op, tasks, on_result);
        }
    }

    void execute_parallel(const char* op, std::vector<detail::task>& tasks, const result_fn& on_result)
    {
        detail::sigpipe_block no_sigpipe;
        // What went wrong first in this call: thrown once every task already started has finished.
        std::function<void()> failed;
        const std::function<void(std::function<void()>)> fail = [&](std::function<void()> raise) {
            if (!failed) {
                failed = std::move(raise);
            }
        };
        // Workers that died between calls (no task was lost), or that an earlier call cut short left
        // busy (their answers must not mix with this call's), are replaced first.
        for (std::size_t w = 0; w < m_slots.size(); ++w) {
            int status = 0;
            const bool ended = m_slots[w].pid > 0 &&
                               detail::sys().waitpid(m_slots[w].pid, &status, WNOHANG) == m_slots[w].pid;
            if (ended) {
                m_slots[w].pid = -1; // reaped
            }
            if (m_slots[w].pid < 0 || !m_slots[w].inflight.empty()) {
                try {
                    replace(w);
                } catch (...) {
                    fail(capture());
                }
            }
        }
        std::vector<std::deque<std::size_t>> fixed(m_slots.size());
        std::deque<std::size_t> any;
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            if (tasks[i].worker >= 0) {
                fixed[static_cast<std::size_t>(tasks[i].worker) % m_slots.size()].push_back(i);
            } else {
                any.push_back(i);
            }
        }
        std::vector<pollfd> fds;
        std::vector<std::size_t> polled;
        for (;;) {
            if (!failed) {
                dispatch(op, tasks, fixed, any, fail);
            }
            fds.clear();
            polled.clear();
            for (std::size_t w = 0; w < m_slots.size(); ++w) {
                if (!m_slots[w].inflight.empty()) {
                    fds.push_back(pollfd{m_slots[w].from.get(), POLLIN, 0});
                    polled.push_back(w);
                }
            }
            if (fds.empty()) {
                break; // nothing running: everything is done, or a failure stopped the dispatch
            }
            const int r = detail::sys().poll(fds.data(), static_cast<nfds_t>(fds.size()), -1);
            if (r < 0) {
                if (errno == EINTR) {
                    continue;
                }
                const int err = errno;
                // Cannot wait for the workers: stop the busy ones rather than hang.
                for (const std::size_t w : polled) {
                    crashed(op, w,
                            "the pool could not wait for it (poll failed: " + std::generic_category().message(err) +
                                "), so it stopped it",
                            fail, true);
                }
                continue;
            }
            for (std::size_t j = 0; j < fds.size(); ++j) {
                if (fds[j].revents != 0) {
                    receive(op, polled[j], on_result, fail);
                }
            }
        }
        if (failed) {
            failed();
        }
        if (!any.empty() || std::any_of(fixed.begin(), fixed.end(), [](const auto& q) { return !q.empty(); })) {
            detail::raise<error>(op, "", "some tasks could not be started", "", detail::errno_code(ECANCELED));
        }
    }

    /// Sends tasks to workers that have room: a few small ones in flight per worker hide the round trip.
    void dispatch(const char* op, std::vector<detail::task>& tasks, std::vector<std::deque<std::size_t>>& fixed,
                  std::deque<std::size_t>& any, const std::function<void(std::function<void()>)>& fail)
    {
        constexpr std::size_t max_inflight = 4;
        const std::size_t start = m_rr;
        for (std::size_t k = 0; k < m_slots.size(); ++k) {
            const std::size_t w = (start + k) % m_slots.size();
            for (;;) {
                slot& s = m_slots[w];
                if (s.pid < 0 || s.inflight.size() >= max_inflight) {
                    break;
                }
                const bool from_any = fixed[w].empty();
                std::deque<std::size_t>& q = from_any ? any : fixed[w];
                if (q.empty()) {
                    break;
                }
                const std::size_t i = q.front();
                const std::size_t bytes = sizeof(detail::frame_header) + 16 + tasks[i].args.size();
                // Only a frame that fits the pipe beside those in flight may be queued behind them: a
                // write that blocked while the worker blocks writing its answer would deadlock.
                if (!s.inflight.empty() && s.inflight_bytes + bytes > s.pipe_capacity / 2) {
                    break;
                }
                if (tasks[i].args.size() + 16 > detail::frame_limit) {
                    q.pop_front();
                    const std::string what = std::to_string(tasks[i].args.size());
                    fail([op, what] {
                        detail::raise<error>(
                            op, "", "the task's arguments take " + what + " bytes, more than a pool message may hold",
                            "pass large data as a shared_ndarray: only its name travels", detail::errno_code(EMSGSIZE));
                    });
                    return;
                }
                q.pop_front();
                const std::uint64_t id = ++m_next_id;
                // One buffer, one write: the header, the two code addresses, the encoded arguments.
                std::string frame(bytes, '\0');
                const detail::frame_header h{detail::frame_magic, detail::frame_task, id, 16 + tasks[i].args.size()};
                const auto inv = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(tasks[i].invoke));
                const auto fn = static_cast<std::uint64_t>(tasks[i].fn);
                std::memcpy(&frame[0], &h, sizeof h);
                std::memcpy(&frame[sizeof h], &inv, 8);
                std::memcpy(&frame[sizeof h + 8], &fn, 8);
                if (!tasks[i].args.empty()) {
                    std::memcpy(&frame[sizeof h + 16], tasks[i].args.data(), tasks[i].args.size());
                }
                s.inflight.push_back(sent{id, i, frame.size()});
                s.inflight_bytes += frame.size();
                if (from_any) {
                    m_rr = (w + 1) % m_slots.size(); // the next free task starts with the next worker
                }
                if (const int err = detail::write_all(s.to.get(), frame.data(), frame.size()); err != 0) {
                    crashed(op, w,
                            err == EPIPE ? std::string()
                                         : "a task could not be sent to it (" + std::generic_category().message(err) +
                                               "), so the pool stopped it",
                            fail, err != EPIPE);
                    break;
                }
            }
        }
    }

    /// Reads one answer from worker w.
    void receive(const char* op, std::size_t w, const result_fn& on_result,
                 const std::function<void(std::function<void()>)>& fail)
    {
        slot& s = m_slots[w];
        detail::frame_header h{};
        const int r = detail::read_all(s.from.get(), &h, sizeof h);
        if (r != 0) {
            crashed(op, w, "", fail, false);
            return;
        }
        const sent expected = s.inflight.front();
        if (h.magic != detail::frame_magic || (h.kind != detail::frame_result && h.kind != detail::frame_error) ||
            h.id != expected.id || h.size > detail::frame_limit) {
            crashed(op, w,
                    "it sent a malformed answer (the task may have corrupted the worker), so the pool stopped it", fail,
                    true);
            return;
        }
        std::string payload;
        try {
            payload.resize(static_cast<std::size_t>(h.size));
        } catch (...) {
            crashed(op, w, "its answer did not fit in memory, so the pool stopped it", fail, true);
            return;
        }
        if (!payload.empty() && detail::read_all(s.from.get(), &payload[0], payload.size()) != 0) {
            crashed(op, w, "", fail, false);
            return;
        }
        s.inflight.pop_front();
        s.inflight_bytes -= std::min(s.inflight_bytes, expected.bytes);
        if (h.kind == detail::frame_error) {
            const detail::task_failure f = detail::decode_failure(payload);
            const std::string name = op;
            const long pid = static_cast<long>(s.pid);
            fail([name, w, pid, f] { detail::rethrow_failure(name, w, pid, false, f); });
            return;
        }
        if (on_result) {
            try {
                on_result(expected.index, payload);
            } catch (...) {
                fail(capture());
            }
        }
    }

    /// Captures the exception in flight as a deferred throw.
    static std::function<void()> capture()
    {
        std::exception_ptr e = std::current_exception();
        return [e] { std::rethrow_exception(e); };
    }

    /// Worker w died (or must be stopped, `kill_it`): reap it, describe how it ended (and `note` why),
    /// fork a replacement.
    void crashed(const char* op, std::size_t w, const std::string& note,
                 const std::function<void(std::function<void()>)>& fail, bool kill_it)
    {
        slot& s = m_slots[w];
        const pid_t pid = s.pid;
        if (kill_it) {
            (void)detail::sys().kill(pid, SIGKILL);
        }
        int status = 0;
        const bool known = reap(pid, status);
        std::string what = detail::describe_exit(status, known);
        what += !s.inflight.empty() ? " while running a task" : "";
        what += note.empty() ? std::string() : " (" + note + ")";
        s.inflight.clear();
        s.inflight_bytes = 0;
        close_slot(s);
        std::string replaced;
        try {
            spawn(w);
            replaced = "a new worker (pid " + std::to_string(m_slots[w].pid) +
                       ") replaced it; state that broadcast gave the old one is gone (broadcast again if tasks "
                       "need it)";
        } catch (const std::exception& e) {
            replaced = "no new worker could be started (" + std::string(e.what()) + "); the next call tries again";
        }
        const std::string where = std::string(op) + " on worker " + std::to_string(w) + " (pid " +
                                  std::to_string(static_cast<long>(pid)) + ")";
        const std::string cause = "the worker " + what;
        fail(
            [where, cause, replaced] { detail::raise<error>(where, "", cause, replaced, detail::errno_code(ECHILD)); });
    }

    /// Waits for `pid` to end. A worker whose pipe reached end of file is exiting, or has closed the
    /// pipe itself: give it a moment, then kill it, so that this never hangs.
    static bool reap(pid_t pid, int& status)
    {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        for (;;) {
            const pid_t r = detail::sys().waitpid(pid, &status, WNOHANG);
            if (r == pid) {
                return true;
            }
            if (r < 0 && errno != EINTR) {
                return false; // ECHILD: reaped elsewhere (SIGCHLD ignored, or the program waited for it)
            }
            if (r == 0 && std::chrono::steady_clock::now() >= deadline) {
                (void)detail::sys().kill(pid, SIGKILL);
                while (detail::sys().waitpid(pid, &status, 0) < 0) {
                    if (errno != EINTR) {
                        return false;
                    }
                }
                return true;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    }

    void close_slot(slot& s) noexcept
    {
        {
            std::lock_guard<std::mutex> g(detail::pool_fds().mutex);
            detail::pool_fds().fds.erase(s.to.get());
            detail::pool_fds().fds.erase(s.from.get());
        }
        s.to.reset();
        s.from.reset();
        s.pid = -1;
    }

    void replace(std::size_t w)
    {
        slot& s = m_slots[w];
        if (s.pid > 0) {
            (void)detail::sys().kill(s.pid, SIGKILL);
            int status = 0;
            (void)reap(s.pid, status);
        }
        s.inflight.clear();
        s.inflight_bytes = 0;
        close_slot(s);
        spawn(w);
    }

    /// Forks worker w with a fresh pair of pipes.
    void spawn(std::size_t w)
    {
        int to[2] = {-1, -1}, from[2] = {-1, -1};
        if (detail::sys().pipe2(to, O_CLOEXEC) != 0) {
            detail::raise_errno("fork_pool", "", errno, "pipe2");
        }
        detail::fd_guard to_r(to[0]), to_w(to[1]);
        if (detail::sys().pipe2(from, O_CLOEXEC) != 0) {
            detail::raise_errno("fork_pool", "", errno, "pipe2");
        }
        detail::fd_guard from_r(from[0]), from_w(from[1]);
        const int capacity = detail::sys().fcntl(to[1], F_GETPIPE_SZ, 0);
        std::vector<int> others;
        {
            std::lock_guard<std::mutex> g(detail::pool_fds().mutex);
            others.assign(detail::pool_fds().fds.begin(), detail::pool_fds().fds.end());
        }
        std::fflush(nullptr); // the worker must not inherit unwritten output and write it a second time
        const pid_t pid = detail::sys().fork();
        if (pid < 0) {
            const int err = errno;
            if (err == EAGAIN || err == ENOMEM) {
                detail::raise<error>("fork_pool: start worker " + std::to_string(w), "",
                                     "fork failed: " + std::generic_category().message(err),
                                     "the system is out of processes (ulimit -u) or memory; end some processes, "
                                     "raise the limit, or use fewer workers",
                                     detail::errno_code(err));
            }
            detail::raise_errno("fork_pool: start worker " + std::to_string(w), "", err, "fork");
        }
        if (pid == 0) {
            for (const int fd : others) {
                (void)detail::sys().close(fd); // other workers' pipes: their ends must close when those workers die
            }
            (void)detail::sys().close(to[1]);
            (void)detail::sys().close(from[0]);
            (void)pthread_sigmask(SIG_SETMASK, &m_mask, nullptr);
            detail::worker_state& ws = detail::current_worker();
            ws.info = worker_info{true, w, m_slots.size()};
            ws.parent = detail::process_identity{static_cast<std::uint64_t>(m_creator),
                                                 detail::process_start_time(m_creator)};
            detail::worker_main(to[0], from[1]);
        }
        slot& s = m_slots[w];
        s.pid = pid;
        s.to = std::move(to_w);
        s.from = std::move(from_r);
        s.pipe_capacity = capacity > 0 ? static_cast<std::size_t>(capacity) : 4096;
        s.inflight.clear();
        s.inflight_bytes = 0;
        std::lock_guard<std::mutex> g(detail::pool_fds().mutex);
        detail::pool_fds().fds.insert(s.to.get());
        detail::pool_fds().fds.insert(s.from.get());
    }

    void shutdown() noexcept
    {
        if (::getpid() != m_creator) {
            return; // a forked copy: the workers are not this process's children
        }
        detail::sigpipe_block no_sigpipe;
        for (slot& s : m_slots) {
            if (s.pid <= 0) {
                continue;
            }
            if (s.inflight.empty()) {
                const detail::frame_header h{detail::frame_magic, detail::frame_stop, 0, 0};
                (void)detail::write_all(s.to.get(), &h, sizeof h);
            } else {
                (void)detail::sys().kill(s.pid, SIGKILL); // still busy with a task nobody waits for any more
            }
        }
        for (slot& s : m_slots) {
            if (s.pid <= 0) {
                continue;
            }
            int status = 0;
            while (detail::sys().waitpid(s.pid, &status, 0) < 0 && errno == EINTR) {
            }
            close_slot(s);
        }
    }

    pid_t m_creator;
    std::vector<slot> m_slots;
    sigset_t m_mask;
    std::mutex m_call;
    std::uint64_t m_next_id = 0;
    std::size_t m_rr = 0;
};

} // namespace ndshm

#endif
