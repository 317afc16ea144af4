/// @file detail/pool_calls.hpp
/// The call set of ndshm::fork_pool and ndshm::mpi::pool (run, broadcast, gather, scatter, scatterv,
/// map, map_reduce): each call checks its arguments, encodes them into tasks (one invoker of
/// detail/pool_invoke.hpp per call form) and hands the tasks to the pool, which runs them.
#ifndef NDSHM_DETAIL_POOL_CALLS_HPP
#define NDSHM_DETAIL_POOL_CALLS_HPP

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <cereal/archives/binary.hpp>

#include "../error.hpp"
#include "array_handle.hpp"
#include "config.hpp"
#include "pool_codec.hpp"
#include "pool_impl.hpp"
#include "pool_invoke.hpp"
#include "reduce_impl.hpp"

namespace ndshm {

template <class T>
class chunk;

namespace detail {

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

/// Narrows each array a chunk task names to the part it works on, which no other task of the call
/// writes: [first, last) counted in rows along axis 0 (`rows`) or in elements.
NDSHM_DECL void claim_range(std::vector<task_array>& arrays, bool rows, std::size_t first, std::size_t last) noexcept;

/// Throws scatterv's error for chunk sizes that add up to `total`, not to the `rows` of array `name`.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_chunk_counts(const std::string& name, std::size_t total,
                                                           std::size_t rows);
/// Throws map's error for elementwise arrays `in` and `out` of different shapes or memory orders.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_map_mismatch(const std::string& in, const std::string& out);
/// Throws map's error for chunk arrays `in` and `out` of different lengths along axis 0.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_map_rows(const std::string& in, const std::string& out,
                                                       std::size_t in_rows, std::size_t out_rows);
/// Throws map_reduce's error for reduce::add_into of an empty handle.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_empty_accumulator();
/// Throws the serialization_error of arguments that cereal could not encode (`what`: its message).
[[noreturn, gnu::cold]] NDSHM_DECL void raise_encode_args(const char* what);

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
    template <class F, class... A, class = if_lambda<F>>
    decltype(auto) run(const F& f, A&&... args)
    {
        return run(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = if_lambda<F>>
    void broadcast(const F& f, A&&... args)
    {
        broadcast(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = if_lambda<F>>
    auto gather(const F& f, A&&... args)
    {
        return gather(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = if_lambda<F>>
    decltype(auto) scatter(const F& f, A&&... args)
    {
        return scatter(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = if_lambda<F>>
    decltype(auto) scatterv(const F& f, A&&... args)
    {
        return scatterv(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = if_lambda<F>>
    decltype(auto) map(const F& f, A&&... args)
    {
        return map(detail::task_function(f), std::forward<A>(args)...);
    }
    template <class F, class... A, class = if_lambda<F>>
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
            raise_chunk_counts(a.name(), total, rows_of(a));
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
            raise_map_mismatch(in.name(), out.name());
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
            raise_map_rows(in.name(), out.name(), rows_of(in), rows_of(out));
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
            raise_empty_accumulator();
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

    using result_fn = result_callback;

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
            raise_encode_args(e.what());
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
        claim_range(e.arrays, rows, first, last);
        return e;
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

} // namespace detail
} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void claim_range(std::vector<task_array>& arrays, bool rows, std::size_t first, std::size_t last) noexcept
{
    for (task_array& t : arrays) {
        std::size_t elements = 1;
        for (const std::size_t d : t.shape) {
            elements *= d;
        }
        const std::size_t count = t.shape.empty() ? 1 : (rows ? t.shape[0] : elements);
        if (count == 0 || (rows && t.fortran && t.shape.size() > 1)) {
            continue; // a Fortran-order array's rows are not contiguous: the task gets all of it
        }
        const std::size_t unit = t.nbytes / count;
        t.first = first * unit;
        t.bytes = (last - first) * unit;
        t.exclusive = true;
    }
}

void raise_chunk_counts(const std::string& name, std::size_t total, std::size_t rows)
{
    raise<error>("scatter", name,
                 "the chunk sizes add up to " + std::to_string(total) + ", but axis 0 has " + std::to_string(rows) +
                     " rows",
                 "pass at least one size, and sizes that add up to shape()[0]", errno_code(EINVAL));
}

void raise_map_mismatch(const std::string& in, const std::string& out)
{
    raise<error>("map", in + "' -> '" + out, "the arrays differ in shape or memory order",
                 "pass arrays of the same shape and order, or use a chunk kernel", errno_code(EINVAL));
}

void raise_map_rows(const std::string& in, const std::string& out, std::size_t in_rows, std::size_t out_rows)
{
    raise<error>("map", in + "' -> '" + out,
                 "the arrays differ in length along axis 0 (" + std::to_string(in_rows) + " and " +
                     std::to_string(out_rows) + ")",
                 "pass arrays with the same number of rows", errno_code(EINVAL));
}

void raise_empty_accumulator()
{
    raise<error>("map_reduce", "", "the accumulator is an empty handle",
                 "pass reduce::add_into(a shared_ndarray that holds an array)", errno_code(EINVAL));
}

void raise_encode_args(const char* what)
{
    raise<serialization_error>("encode a task's arguments", "", std::string("cereal: ") + what,
                               "check the argument types' serialize()", make_error_code(errc::serialization));
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
