// C++ half of a job shared with mpi4py ranks (tests/python/mpi_numpy.py), run as
//   mpiexec -n 2 ndshm_mpi_numpy : -n 2 python3 mpi_numpy.py
// with NDSHM_MPI_EMULATED_NODES=2. The C++ ranks (world ranks 0 and 1) make a node array, one node each;
// world rank 0 tells the Python ranks the segment names; Python rank 2 + k opens node k's copy with
// NumPy by name, checks it and writes into it; the C++ ranks see the write.
#include <ndshm/mpi.hpp>

#include <cstdio>
#include <string>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>

int main(int argc, char** argv)
{
    MPI_Init(&argc, &argv);
    int world = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &world);
    MPI_Comm cpp = MPI_COMM_NULL;
    MPI_Comm_split(MPI_COMM_WORLD, 0, world, &cpp); // the Python ranks split off with colour 1
    int ok = 1;
    try {
        ndshm::mpi::topology topo(cpp);
        const xt::xarray<double> want = xt::reshape_view(xt::arange<double>(60.0), {20, 3});
        auto a = ndshm::mpi::node_array<double>::from_root(topo, want, 0);

        // "name0 name1": node k's segment, for Python rank 2 + k.
        std::string names = a.name();
        if (topo.rank() == 0) {
            char other[256] = {};
            MPI_Recv(other, sizeof other, MPI_CHAR, 1, 0, topo.comm(), MPI_STATUS_IGNORE);
            names += std::string(" ") + other;
            long long n = static_cast<long long>(names.size());
            MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
            MPI_Bcast(&names[0], static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
        } else {
            MPI_Send(names.c_str(), static_cast<int>(names.size() + 1), MPI_CHAR, 0, 0, topo.comm());
            long long n = 0;
            MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
            std::string ignored(static_cast<std::size_t>(n), '\0');
            MPI_Bcast(&ignored[0], static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
        }
        MPI_Barrier(MPI_COMM_WORLD); // the Python ranks have read and written

        const double expected = 1000.0 + 2 + topo.node();
        if (a(0, 0) != expected || a(19, 2) != 59.0) {
            std::fprintf(stderr, "rank %d: node %d's copy holds a(0, 0) = %g, a(19, 2) = %g; expected %g, 59\n", world,
                         topo.node(), a(0, 0), a(19, 2), expected);
            ok = 0;
        }
        int all = 0;
        MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD); // with the Python ranks' verdicts
        ok = all;
        a.release();
        if (world == 0) {
            std::printf("C++ and mpi4py ranks agree on both node copies: %s\n", ok ? "ok" : "FAILED");
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", world, e.what());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Comm_free(&cpp);
    MPI_Finalize();
    return ok ? 0 : 1;
}
