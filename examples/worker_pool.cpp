// A pool of persistent forked workers over shared arrays: map, scatter, gather, broadcast, and what
// happens when a task throws or a worker dies.
//
// The workers are forked once, when the pool is made; every call sends them a function address (the
// same in every fork) and serialised arguments. Shared arrays travel as their names, so a worker
// reads its input and writes its output in place, without copies.
#include <ndshm/ndshm.hpp>
#include <ndshm/pool.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <vector>

namespace {

// [readme]
// Tasks are plain functions: the same code address in the parent and in every worker.
void row_norms(ndshm::chunk<const double> in, ndshm::chunk<double> out)
{
    for (std::size_t i = 0; i < in.size(); ++i) { // rows in.first() .. in.last()-1 of the arrays
        double s = 0;
        for (std::size_t j = 0; j < in.shape()[1]; ++j) {
            s += in(i, j) * in(i, j);
        }
        out(i) = std::sqrt(s);
    }
}

double g_scale = 1.0; // per-worker state, set by broadcast
void set_scale(double s) { g_scale = s; }

double scaled_sum(ndshm::chunk<const double> rows) { return g_scale * xt::sum(rows.view())(); }

long worker_pid() { return static_cast<long>(::getpid()); }

double checked_sqrt(double x)
{
    if (x < 0) {
        throw std::domain_error("negative input");
    }
    return std::sqrt(x);
}

int run()
{
    const std::size_t n = 100000;
    ndshm::fork_pool pool(2); // two worker processes, forked once, reused by every call

    auto in = ndshm::shared_ndarray<double>::create({n, 3});
    for (std::size_t i = 0; i < n; ++i) {
        in(i, 0) = 3.0 * static_cast<double>(i);
        in(i, 1) = 4.0 * static_cast<double>(i);
    }
    auto norms = ndshm::shared_ndarray<double>::create({n});
    pool.map(row_norms, in, norms); // axis-0 chunks of `in`, results straight into `norms`

    auto roots = ndshm::shared_ndarray<double>::create({n, 3});
    pool.map(checked_sqrt, in, roots); // element by element: roots[i] = checked_sqrt(in[i])

    pool.broadcast(set_scale, 0.5);                           // every worker gets the same value
    std::vector<double> parts = pool.scatter(scaled_sum, in); // chunk i of `in` to worker i
    std::vector<long> pids = pool.gather(worker_pid);         // one result per worker

    try {
        in(7, 2) = -1.0;
        pool.map(checked_sqrt, in, roots);
    } catch (const ndshm::error& e) { // the worker's exception, with its message
        std::printf("map failed: %s\n", e.what());
    }
    // [readme-end]

    std::size_t wrong = 0;
    for (std::size_t i = 0; i < n; ++i) {
        wrong += norms(i) == 5.0 * static_cast<double>(i) ? 0 : 1;
        wrong += roots(i, 1) == std::sqrt(4.0 * static_cast<double>(i)) || i == 7 ? 0 : 1;
    }
    double total = 0;
    for (const double p : parts) {
        total += p;
    }
    const double expected = 0.5 * 7.0 * static_cast<double>(n) * static_cast<double>(n - 1) / 2.0;
    std::printf("workers %ld and %ld: %zu norms and %zu square roots computed, %zu wrong; scaled sum %.1f "
                "(expected %.1f)\n",
                pids[0], pids[1], n, 3 * n, wrong, total, expected);
    return wrong == 0 && total == expected && pids.size() == 2 ? 0 : 1;
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
