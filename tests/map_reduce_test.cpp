// fork_pool::map_reduce: every reducer (sum, minimum, maximum, concatenate, none, a callable of the
// caller's, add_into with per-worker accumulators in shared memory) checked against the same reduction
// done serially, with real workers and with pool(0); results that cannot be combined, a worker that dies
// mid-reduction (the accumulator untouched), an array with no rows.
#include <ndshm/pool.hpp>

#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

using ndshm::chunk;
using ndshm::fork_pool;
using ndshm::shared_ndarray;
namespace reduce = ndshm::reduce;

namespace {

// ---- task functions: plain functions, the same address in every worker ------------------------------

std::int64_t chunk_sum(chunk<const std::int64_t> c)
{
    std::int64_t s = 0;
    for (std::size_t i = 0; i < c.size(); ++i) {
        for (std::size_t j = 0; j < c.shape()[1]; ++j) {
            s += c(i, j);
        }
    }
    return s;
}

std::int64_t chunk_min(chunk<const std::int64_t> c)
{
    std::int64_t m = INT64_MAX; // the identity: an empty chunk does not change the minimum
    for (std::size_t i = 0; i < c.size(); ++i) {
        for (std::size_t j = 0; j < c.shape()[1]; ++j) {
            m = std::min(m, c(i, j));
        }
    }
    return m;
}

std::int64_t chunk_max(chunk<const std::int64_t> c)
{
    std::int64_t m = INT64_MIN;
    for (std::size_t i = 0; i < c.size(); ++i) {
        for (std::size_t j = 0; j < c.shape()[1]; ++j) {
            m = std::max(m, c(i, j));
        }
    }
    return m;
}

// The rows of the chunk, as a list: concatenated, the rows of the whole array in order.
std::vector<std::size_t> chunk_rows(chunk<const std::int64_t> c)
{
    std::vector<std::size_t> r;
    for (std::size_t i = c.first(); i < c.last(); ++i) {
        r.push_back(i);
    }
    return r;
}

// The chunk's rows times `factor`, as a new array the caller receives.
shared_ndarray<std::int64_t> scaled_rows(chunk<const std::int64_t> c, std::int64_t factor)
{
    auto out = shared_ndarray<std::int64_t>::create({c.size(), c.shape()[1]});
    for (std::size_t i = 0; i < c.size(); ++i) {
        for (std::size_t j = 0; j < c.shape()[1]; ++j) {
            out(i, j) = c(i, j) * factor;
        }
    }
    return out;
}

// Per-column sums of the chunk, as a new array: reduced elementwise.
shared_ndarray<std::int64_t> column_sums(chunk<const std::int64_t> c)
{
    auto out = shared_ndarray<std::int64_t>::create({c.shape()[1]});
    for (std::size_t i = 0; i < c.size(); ++i) {
        for (std::size_t j = 0; j < c.shape()[1]; ++j) {
            out(j) += c(i, j);
        }
    }
    return out;
}

// Per-column minima of the chunk (the identity for an empty chunk).
shared_ndarray<std::int64_t> column_min(chunk<const std::int64_t> c)
{
    auto out = shared_ndarray<std::int64_t>::create({c.shape()[1]});
    out.view().fill(INT64_MAX);
    for (std::size_t i = 0; i < c.size(); ++i) {
        for (std::size_t j = 0; j < c.shape()[1]; ++j) {
            out(j) = std::min(out(j), c(i, j));
        }
    }
    return out;
}

// An array whose length depends on the chunk: elementwise reducers refuse to combine it.
shared_ndarray<std::int64_t> ragged(chunk<const std::int64_t> c)
{
    return shared_ndarray<std::int64_t>::create({c.first() + 1});
}

// Adds the chunk's per-column sums into the worker's own accumulator; records which worker did.
void add_columns(chunk<const std::int64_t> c, shared_ndarray<std::int64_t>& partial)
{
    for (std::size_t i = 0; i < c.size(); ++i) {
        for (std::size_t j = 0; j < c.shape()[1]; ++j) {
            partial(j) += c(i, j);
        }
    }
}

// A histogram of values modulo `bins`, into the worker's accumulator (a reduction whose result has a
// shape of its own, unrelated to the array's).
void histogram(chunk<const std::int64_t> c, shared_ndarray<std::int64_t>& partial, std::int64_t bins)
{
    for (std::size_t i = 0; i < c.size(); ++i) {
        for (std::size_t j = 0; j < c.shape()[1]; ++j) {
            partial(static_cast<std::size_t>((c(i, j) % bins + bins) % bins)) += 1;
        }
    }
}

// Doubles the chunk in place: a map with no result (reduce::none).
void double_in_place(chunk<std::int64_t> c) { c.view() *= 2; }

std::uint64_t rows_seen(chunk<const std::int64_t> c) { return c.size() + 1; }

// Adds into its accumulator, then dies in the chunk that holds row `row`.
void add_then_die(chunk<const std::int64_t> c, shared_ndarray<std::int64_t>& partial, std::size_t row)
{
    add_columns(c, partial);
    if (c.first() <= row && row < c.last()) {
        std::signal(SIGABRT, SIG_DFL);
        std::abort();
    }
}

shared_ndarray<std::int64_t> make_data(std::size_t rows, std::size_t cols)
{
    auto a = shared_ndarray<std::int64_t>::create({rows, cols});
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) {
            a(i, j) = static_cast<std::int64_t>((i * 7919 + j * 104729) % 1000) - 500;
        }
    }
    return a;
}

} // namespace

TEST_CASE("map_reduce with the built-in reducers gives the serial result", "[pool][map_reduce]")
{
    const std::size_t workers = GENERATE(0, 1, 2, 3);
    CAPTURE(workers);
    fork_pool pool(workers);
    const auto a = make_data(101, 7);
    const shared_ndarray<const std::int64_t> in = a;

    std::int64_t sum = 0, lo = INT64_MAX, hi = INT64_MIN;
    std::vector<std::int64_t> cols(7, 0), col_lo(7, INT64_MAX);
    for (std::size_t i = 0; i < 101; ++i) {
        for (std::size_t j = 0; j < 7; ++j) {
            sum += a(i, j);
            lo = std::min(lo, a(i, j));
            hi = std::max(hi, a(i, j));
            cols[j] += a(i, j);
            col_lo[j] = std::min(col_lo[j], a(i, j));
        }
    }

    CHECK(pool.map_reduce(chunk_sum, in, reduce::sum) == sum);
    CHECK(pool.map_reduce(chunk_min, in, reduce::minimum) == lo);
    CHECK(pool.map_reduce(chunk_max, in, reduce::maximum) == hi);

    // Elementwise, on arrays the workers made.
    const auto s = pool.map_reduce(column_sums, in, reduce::sum);
    const auto m = pool.map_reduce(column_min, in, reduce::minimum);
    REQUIRE(s.shape() == std::vector<std::size_t>{7});
    REQUIRE(m.shape() == std::vector<std::size_t>{7});
    for (std::size_t j = 0; j < 7; ++j) {
        CHECK(s(j) == cols[j]);
        CHECK(m(j) == col_lo[j]);
    }

    // Concatenated in chunk order: lists, and arrays along axis 0.
    const auto rows = pool.map_reduce(chunk_rows, in, reduce::concatenate);
    REQUIRE(rows.size() == 101);
    for (std::size_t i = 0; i < 101; ++i) {
        REQUIRE(rows[i] == i);
    }
    const auto scaled = pool.map_reduce(scaled_rows, in, reduce::concatenate, std::int64_t{3});
    REQUIRE(scaled.shape() == a.shape());
    for (std::size_t i = 0; i < 101; ++i) {
        for (std::size_t j = 0; j < 7; ++j) {
            REQUIRE(scaled(i, j) == 3 * a(i, j));
        }
    }
}

TEST_CASE("map_reduce with a reducer of the caller's, which may capture", "[pool][map_reduce]")
{
    const std::size_t workers = GENERATE(0, 2);
    fork_pool pool(workers);
    const auto a = make_data(50, 3);
    int calls = 0;
    // Runs in the calling process: a capture is fine here, unlike in the task.
    const auto combine = [&calls](std::uint64_t x, std::uint64_t y) {
        ++calls;
        return x * 1000 + y; // not commutative: shows the fold is left to right, in chunk order (modulo 2^64)
    };
    const std::uint64_t r = pool.map_reduce(rows_seen, shared_ndarray<const std::int64_t>(a), combine);
    // The chunks: pieces of the 50 rows, in order; recompute the expected fold from their sizes.
    const std::size_t k = std::min<std::size_t>(50, workers == 0 ? 1 : 4 * workers);
    std::uint64_t expected = 0;
    for (std::size_t i = 0; i < k; ++i) {
        const std::uint64_t size = (i + 1) * 50 / k - i * 50 / k + 1;
        expected = i == 0 ? size : expected * 1000 + size;
    }
    CHECK(r == expected);
    CHECK(calls == static_cast<int>(k) - 1);
}

TEST_CASE("map_reduce with reduce::none works by side effects", "[pool][map_reduce]")
{
    fork_pool pool(2);
    auto a = make_data(33, 4);
    const xt::xarray<std::int64_t> before = a.view();
    pool.map_reduce(double_in_place, a, reduce::none);
    for (std::size_t i = 0; i < 33; ++i) {
        for (std::size_t j = 0; j < 4; ++j) {
            REQUIRE(a(i, j) == 2 * before(i, j));
        }
    }
}

TEST_CASE("map_reduce with add_into: per-worker accumulators added into the caller's array", "[pool][map_reduce]")
{
    const std::size_t workers = GENERATE(0, 1, 2, 3);
    CAPTURE(workers);
    fork_pool pool(workers);
    const auto a = make_data(257, 5);
    const shared_ndarray<const std::int64_t> in = a;

    auto acc = shared_ndarray<std::int64_t>::create({5});
    acc.view().fill(10); // added into: what was there stays
    pool.map_reduce(add_columns, in, reduce::add_into(acc));
    for (std::size_t j = 0; j < 5; ++j) {
        std::int64_t s = 10;
        for (std::size_t i = 0; i < 257; ++i) {
            s += a(i, j);
        }
        CHECK(acc(j) == s);
    }

    // A result of its own shape: a histogram, with an extra argument.
    auto hist = shared_ndarray<std::int64_t>::create({16});
    pool.map_reduce(histogram, in, reduce::add_into(hist), std::int64_t{16});
    std::vector<std::int64_t> expected(16, 0);
    for (std::size_t i = 0; i < 257; ++i) {
        for (std::size_t j = 0; j < 5; ++j) {
            expected[static_cast<std::size_t>((a(i, j) % 16 + 16) % 16)] += 1;
        }
    }
    std::int64_t total = 0;
    for (std::size_t b = 0; b < 16; ++b) {
        CHECK(hist(b) == expected[b]);
        total += hist(b);
    }
    CHECK(total == 257 * 5);
}

TEST_CASE("map_reduce over an array with no rows gives f one empty chunk", "[pool][map_reduce]")
{
    fork_pool pool(2);
    const auto a = shared_ndarray<const std::int64_t>(shared_ndarray<std::int64_t>::create({0, 3}));
    CHECK(pool.map_reduce(chunk_sum, a, reduce::sum) == 0);
    CHECK(pool.map_reduce(chunk_min, a, reduce::minimum) == INT64_MAX);
    CHECK(pool.map_reduce(chunk_rows, a, reduce::concatenate).empty());
    auto acc = shared_ndarray<std::int64_t>::create({3});
    pool.map_reduce(add_columns, a, reduce::add_into(acc));
    CHECK(acc(0) == 0);
}

TEST_CASE("map_reduce refuses results it cannot combine, and an empty accumulator", "[pool][map_reduce][errors]")
{
    fork_pool pool(2);
    const auto a = shared_ndarray<const std::int64_t>(make_data(20, 2));
    CHECK_THROWS_WITH(pool.map_reduce(ragged, a, reduce::sum),
                      Catch::Contains("differ in shape") && Catch::Contains("reduce::sum"));
    CHECK_THROWS_WITH(pool.map_reduce(ragged, a, reduce::maximum), Catch::Contains("reduce::maximum"));
    CHECK_THROWS_AS(pool.map_reduce(add_columns, a, reduce::add_into(shared_ndarray<std::int64_t>())), ndshm::error);
    // The pool works as before.
    CHECK(pool.map_reduce(chunk_sum, a, reduce::sum) == chunk_sum(chunk<const std::int64_t>(a, 0, 20)));
}

TEST_CASE("a worker that dies during add_into leaves the accumulator untouched", "[pool][map_reduce][fault]")
{
    fork_pool pool(2);
    const auto a = shared_ndarray<const std::int64_t>(make_data(64, 3));
    auto acc = shared_ndarray<std::int64_t>::create({3});
    acc.view().fill(42);
    CHECK_THROWS_WITH(pool.map_reduce(add_then_die, a, reduce::add_into(acc), std::size_t{40}),
                      Catch::Contains("SIGABRT"));
    for (std::size_t j = 0; j < 3; ++j) {
        CHECK(acc(j) == 42);
    }
    // The replaced worker takes part in the next reduction.
    pool.map_reduce(add_columns, a, reduce::add_into(acc));
    std::int64_t s0 = 42;
    for (std::size_t i = 0; i < 64; ++i) {
        s0 += a(i, 0);
    }
    CHECK(acc(0) == s0);
}

TEST_CASE("every pool call takes a lambda with an empty capture list", "[pool][lambda]")
{
    const std::size_t workers = GENERATE(0, 2);
    fork_pool pool(workers);
    const auto a = make_data(40, 3);
    const shared_ndarray<const std::int64_t> in = a;
    // What a lambda would capture travels as an argument after it.
    CHECK(pool.run([](int x, int offset) { return x + offset; }, 1, 3) == 4);
    CHECK(pool.gather([] { return 7; }) == std::vector<int>(pool.concurrency(), 7));
    pool.broadcast([](int) {}, 1);
    const auto parts = pool.scatter([](chunk<const std::int64_t> c) { return c.size(); }, in);
    std::size_t rows = 0;
    for (const auto p : parts) {
        rows += p;
    }
    CHECK(rows == 40);
    const auto uneven = pool.scatterv([](chunk<const std::int64_t> c) { return c.size(); }, in,
                                      std::vector<std::size_t>{10, 30});
    CHECK(uneven == std::vector<std::size_t>{10, 30});
    CHECK(pool.map([](int x) noexcept { return 2 * x; }, std::vector<int>{1, 2, 3}) == std::vector<int>{2, 4, 6});
    auto out = shared_ndarray<std::int64_t>::create({40, 3});
    pool.map([](std::int64_t x, std::int64_t k) { return x * k; }, in, out, std::int64_t{5});
    CHECK(out(39, 2) == 5 * a(39, 2));
    auto sums = shared_ndarray<std::int64_t>::create({40});
    pool.map(
        [](chunk<const std::int64_t> c, chunk<std::int64_t> s) {
            for (std::size_t i = 0; i < c.size(); ++i) {
                s(i) = c(i, 0) + c(i, 1) + c(i, 2);
            }
        },
        in, sums);
    CHECK(sums(17) == a(17, 0) + a(17, 1) + a(17, 2));
    CHECK(pool.map_reduce([](chunk<const std::int64_t> c) { return chunk_sum(c); }, in, reduce::sum) ==
          chunk_sum(chunk<const std::int64_t>(a, 0, 40)));
    auto acc = shared_ndarray<std::int64_t>::create({3});
    pool.map_reduce([](chunk<const std::int64_t> c, shared_ndarray<std::int64_t>& p) { add_columns(c, p); }, in,
                    reduce::add_into(acc));
    CHECK(acc(1) == xt::sum(xt::view(a.view(), xt::all(), 1))());
}
