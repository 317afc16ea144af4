// Uses ndshm::mpi the way the README shows: a node array made collectively, rank 0's data copied to every
// node, read by every rank, released. Run through mpiexec by tests/package/run_consumer.cmake.
#include <ndshm/mpi.hpp>

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv)
{
    MPI_Init(&argc, &argv);
    int ok = 0;
    try {
        ndshm::mpi::topology topo;
        auto a = ndshm::mpi::node_array<double>::create(topo, {4});
        if (topo.rank() == 0) {
            a(2) = 42.5;
        }
        a.bcast(0);
        const std::string name = a.name();
        ok = a(2) == 42.5 && !name.empty() ? 1 : 0;
        a.release();
        int all = 0;
        MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, topo.comm());
        ok = all;
        if (topo.rank() == 0) {
            std::printf("consumer mpi: %s (%d ranks, %d nodes, C++ %ld)\n", ok ? "ok" : "FAILED", topo.size(),
                        topo.node_count(), static_cast<long>(__cplusplus));
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer mpi: %s\n", e.what());
    }
    MPI_Finalize();
    return ok ? 0 : 1;
}
