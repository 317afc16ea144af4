// One analysis written once against the pool API, run with a fork_pool on one machine and with an
// ndshm::mpi::pool over the ranks of an MPI job:
//
//   NDSHM_MPI_EMULATED_NODES=2 mpiexec -n 4 ndshm_example_mpi_pool
//
// (the variable splits one machine into two nodes, so that two of the three workers get their rows by
// MPI; leave it out on a cluster). Rank 0 drives both pools and checks that they agree.
#include <ndshm/mpi_pool.hpp>
#include <ndshm/pool.hpp>

#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

#include <xtensor/xmath.hpp>

namespace {

// [readme]
// Tasks are plain functions, as for fork_pool: every rank runs the same executable.
void normalise(ndshm::chunk<const double> in, ndshm::chunk<double> out, double scale)
{
    out.view() = in.view() / scale;
}

double chunk_sum(ndshm::chunk<const double> c) { return xt::sum(c.view())(); }

void histogram(ndshm::chunk<const double> c, ndshm::shared_ndarray<std::int64_t>& bins)
{
    for (const double x : c.view()) {
        const auto b = static_cast<std::size_t>(x / 10.0); // 10 bins of width 10
        bins(b < 10 ? b : 9) += 1;
    }
}

// The analysis takes any pool: ndshm::fork_pool or ndshm::mpi::pool.
struct result {
    ndshm::shared_ndarray<double> scaled;
    ndshm::shared_ndarray<std::int64_t> bins;
    double total = 0.0;
};

template <class Pool>
result analyse(Pool& pool, const ndshm::shared_ndarray<const double>& data)
{
    result r{ndshm::shared_ndarray<double>::create(data.shape()), ndshm::shared_ndarray<std::int64_t>::create({10})};
    pool.map(normalise, data, r.scaled, 100.0);                        // rows written into r.scaled
    pool.map_reduce(histogram, data, ndshm::reduce::add_into(r.bins)); // per-worker bins, added up
    r.total = pool.map_reduce(chunk_sum, ndshm::shared_ndarray<const double>(r.scaled), ndshm::reduce::sum);
    return r;
}
// [readme-end]

/// Row i holds (i * 4 + j) % 100 in column j.
ndshm::shared_ndarray<const double> load_data()
{
    const std::size_t rows = 200000;
    auto a = ndshm::shared_ndarray<double>::create({rows, 4});
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < 4; ++j) {
            a(i, j) = static_cast<double>((i * 4 + j) % 100);
        }
    }
    return a;
}

/// Prints both results; 0 if they agree and the histogram is right.
int compare(const result& here, const result& there, const ndshm::mpi::pool& pool)
{
    const bool same = here.total == there.total && static_cast<bool>(there.scaled.view() == here.scaled.view()) &&
                      static_cast<bool>(there.bins.view() == here.bins.view());
    std::printf("fork_pool(2): sum %.1f; mpi::pool with %zu workers (%zu on the driver's node): sum %.1f, "
                "%lld values in the first bin (%s)\n",
                here.total, pool.size(), static_cast<std::size_t>(pool.size() > 0 && pool.shares_memory(0)),
                there.total, static_cast<long long>(there.bins(0)), same ? "the same" : "DIFFERENT");
    return same && there.bins(0) == static_cast<std::int64_t>(there.scaled.size() / 10) ? 0 : 1;
}

int run()
{
    int rc = 0;
    // [readme]
    ndshm::mpi::pool pool; // on every rank: rank 0 drives, the others serve tasks until rank 0's pool ends
    if (pool.driver()) {
        const auto data = load_data();
        ndshm::fork_pool here(2);
        const result on_one_machine = analyse(here, data);
        const result over_mpi = analyse(pool, data); // the same calls, spread over the ranks
        rc = compare(on_one_machine, over_mpi, pool);
    }
    // [readme-end]
    return rc;
}

} // namespace

int main(int argc, char** argv)
{
    MPI_Init(&argc, &argv);
    int rc = 1;
    try {
        rc = run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int worst = 0;
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return worst;
}
