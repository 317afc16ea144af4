// Catch2 main for the MPI tests: every rank runs the same test cases in the same order (they make
// collective calls), between MPI_Init and MPI_Finalize. A rank's failures are reported by that rank,
// under a header naming it; every rank exits with the worst result, so mpiexec fails if any rank did.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <mpi.h>

#include <string>

int main(int argc, char** argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0;
    int size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int result = 0;
    {
        Catch::Session session;
        result = session.applyCommandLine(argc, argv);
        if (result == 0) {
            session.configData().name = "ndshm_mpi_tests (rank " + std::to_string(rank) + " of " +
                                        std::to_string(size) + ")";
            result = session.run();
        }
    }
    int worst = 0;
    MPI_Allreduce(&result, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return worst;
}
