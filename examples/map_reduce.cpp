// Map-reduce over a shared array with fork_pool: a function runs over axis-0 chunks in worker processes
// and a reducer combines the results (a total, the rows that match, a minimum), or every worker adds
// into an accumulator of its own in shared memory (a histogram), which the call adds into yours.
#include <ndshm/pool.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

namespace {

// [readme]
// Reductions are plain functions over a chunk of rows (the same code address in every worker).
double chunk_sum(ndshm::chunk<const double> c) { return xt::sum(c.view())(); }

std::vector<std::size_t> rows_above(ndshm::chunk<const double> c, double limit)
{
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < c.size(); ++i) {
        if (c(i, 0) > limit) {
            rows.push_back(c.first() + i); // an index into the whole array
        }
    }
    return rows;
}

// With reduce::add_into, the function adds into the accumulator of the worker it runs on.
void histogram(ndshm::chunk<const double> c, ndshm::shared_ndarray<std::int64_t>& bins, double width)
{
    for (const double x : c.view()) {
        const auto b = static_cast<std::size_t>(x / width);
        bins(b < bins.size() ? b : bins.size() - 1) += 1;
    }
}
// [readme-end]

int run()
{
    const std::size_t n = 1000000;
    auto a = ndshm::shared_ndarray<double>::create({n, 4});
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < 4; ++j) {
            a(i, j) = static_cast<double>((i * 4 + j) % 100);
        }
    }
    const ndshm::shared_ndarray<const double> data = a;

    // [readme]
    ndshm::fork_pool pool(2);
    namespace reduce = ndshm::reduce;

    double total = pool.map_reduce(chunk_sum, data, reduce::sum);
    std::vector<std::size_t> big = pool.map_reduce(rows_above, data, reduce::concatenate, 90.0);
    double largest = pool.map_reduce(chunk_sum, data, [](double x, double y) { return x > y ? x : y; });

    auto bins = ndshm::shared_ndarray<std::int64_t>::create({10}); // zeros
    pool.map_reduce(histogram, data, reduce::add_into(bins), 10.0);
    // [readme-end]

    std::int64_t counted = 0;
    for (const auto b : bins) {
        counted += b;
    }
    const double expected = static_cast<double>(n) * 4 / 100 * (99 * 100 / 2);
    std::printf("total %.0f (expected %.0f), %zu rows above 90, largest chunk sum %.0f, %lld values binned\n", total,
                expected, big.size(), largest, static_cast<long long>(counted));
    if (total != expected || counted != static_cast<std::int64_t>(n * 4) ||
        bins(0) != static_cast<std::int64_t>(n * 4 / 10)) {
        std::fprintf(stderr, "wrong reduction\n");
        return 1;
    }
    for (std::size_t k = 1; k < big.size(); ++k) {
        if (big[k] <= big[k - 1]) {
            std::fprintf(stderr, "concatenate lost the chunk order\n");
            return 1;
        }
    }
    return 0;
}

} // namespace

int main()
{
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
