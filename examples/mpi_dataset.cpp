// A dataset loaded once per node and used by every rank of an MPI job:
//
//   NDSHM_MPI_EMULATED_NODES=2 mpiexec -n 4 ndshm_example_mpi_dataset [DIR]
//
// (the variable splits one machine into two nodes; leave it out on a cluster). Rank 0 writes a dataset
// into a store directory (DIR, or a temporary one); each node's leader loads it once into shared
// memory; every rank reads its own rows of its node's copy. Then rank 0 alone computes a result and
// every node gets one copy of it.
#include <ndshm/mpi.hpp>

#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

namespace {

constexpr std::size_t rows_total = 100000;
constexpr std::size_t columns = 16;

int run(const std::string& dir)
{
    // [readme]
    ndshm::mpi::topology topo; // MPI_COMM_WORLD, split by node (NDSHM_MPI_EMULATED_NODES splits one machine)

    // Each node's leader loads the dataset from the store once; the node's other ranks attach it.
    ndshm::mpi::node_store data(topo, dir);
    auto features = data.get<float>("features"); // shared_ndarray<const float> on every rank: no copy per rank

    // Every rank reads its own rows of its node's copy.
    const std::size_t rows = features.shape()[0];
    const auto r = static_cast<std::size_t>(topo.rank()), n = static_cast<std::size_t>(topo.size());
    const auto mine = xt::view(features.view(), xt::range(rows * r / n, rows * (r + 1) / n));
    double local = xt::sum<double>(mine)(), total = 0.0;
    MPI_Allreduce(&local, &total, 1, MPI_DOUBLE, MPI_SUM, topo.comm());

    // Rank 0 alone computes a result; every node gets one copy of it, leader to leader.
    xt::xarray<double> centre;
    if (topo.rank() == 0) {
        centre = xt::mean(xt::cast<double>(features.view()), {0});
    }
    auto c = ndshm::mpi::node_array<double>::from_root(topo, centre, 0); // c.view() on every rank
    // [readme-end]

    std::printf("rank %d (node %d%s): %s '%s', rows [%zu, %zu), sum %.0f; result '%s', centre[0] %.2f\n", topo.rank(),
                topo.node(), topo.is_leader() ? ", leader" : "",
                data.stats().loaded     ? "loaded"
                : data.stats().attached ? "attached"
                                        : "maps",
                features.name().c_str(), rows * r / n, rows * (r + 1) / n, local, c.name().c_str(), c(0));
    // Row k holds (k + j) % 1000 in column j, and 100000 rows are 100 full cycles: every column's mean is
    // 499.5, and the sum is 16 * 100 * (0 + 1 + ... + 999).
    const bool right = total == 16.0 * 100.0 * 499500.0 && c.shape() == ndshm::shape_type{columns} &&
                       xt::all(xt::equal(c.view(), 499.5));
    int all = 0;
    const int mine_ok = right ? 1 : 0;
    MPI_Allreduce(&mine_ok, &all, 1, MPI_INT, MPI_MIN, topo.comm());

    // [readme]
    c.release();  // collective: each leader unlinks its node's copy once its node's ranks are done
    data.close(); // collective: the leaders' stores release what they loaded
    // [readme-end]
    if (topo.rank() == 0) {
        std::printf("%d ranks on %d nodes, one copy of the dataset per node: total %.0f (%s)\n", topo.size(),
                    topo.node_count(), total, all ? "as expected" : "WRONG");
    }
    return all ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int rc = 1;
    std::string dir = argc > 1 ? argv[1] : "";
    const bool temporary = dir.empty();
    try {
        // Rank 0 writes the dataset (on a cluster it would already sit on a shared file system).
        if (rank == 0) {
            if (temporary) {
                char tmpl[] = "/tmp/ndshm_example_mpi_XXXXXX";
                if (::mkdtemp(tmpl) == nullptr) {
                    throw std::system_error(errno, std::generic_category(), "mkdtemp");
                }
                dir = tmpl;
            }
            xt::xarray<float> x = xt::zeros<float>({rows_total, columns});
            for (std::size_t k = 0; k < rows_total; ++k) {
                for (std::size_t j = 0; j < columns; ++j) {
                    x(k, j) = static_cast<float>((k + j) % 1000);
                }
            }
            ndshm::store(dir).put("features", x);
        }
        unsigned long long n = dir.size();
        MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
        dir.resize(static_cast<std::size_t>(n));
        MPI_Bcast(&dir[0], static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
        rc = run(dir);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0 && temporary) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    MPI_Finalize();
    return rc;
}
