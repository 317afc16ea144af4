// A job that dies: run through mpiexec on 4 ranks with 2 emulated nodes by tests/mpi_crash.cmake, with
// NDSHM_DIR set to a private directory. Every node gets a node array, a node object and a store array;
// then rank 3 kills itself while the others wait in a barrier, so mpiexec aborts the job and nobody
// releases anything. What it leaves are ordinary segments of dead creators, which `ndshm gc` removes.
//
//   ndshm_mpi_crash STORE_DIR          the job (under mpiexec); each rank prints its pid
//   ndshm_mpi_crash --wait PID...      returns once each of these processes has ended: mpiexec may return
//                                      before every rank it aborted is gone (blocks on a pidfd; no sleep)
#include <ndshm/mpi.hpp>

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>

namespace {

struct params {
    std::string label;
    ndshm::shared_ndarray<double> table;

    template <class A>
    void serialize(A& ar)
    {
        ar(label, table);
    }
};

/// Blocks until process `pid` has ended (exited or killed, reaped or not).
int wait_for(pid_t pid)
{
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) {
        if (errno == ESRCH) {
            return 0; // already gone
        }
        std::fprintf(stderr, "pidfd_open(%d): %s\n", static_cast<int>(pid), std::strerror(errno));
        return 1;
    }
    pollfd p{fd, POLLIN, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
    ::close(fd);
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc > 1 && std::string(argv[1]) == "--wait") {
        int rc = 0;
        for (int i = 2; i < argc; ++i) {
            rc |= wait_for(static_cast<pid_t>(std::atoi(argv[i])));
        }
        return rc;
    }
    MPI_Init(&argc, &argv);
    if (argc != 2) {
        std::fprintf(stderr, "usage: ndshm_mpi_crash STORE_DIR\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    try {
        ndshm::mpi::topology topo;
        if (topo.rank() == 0) {
            ndshm::store(argv[1]).put("x", xt::xarray<float>(xt::arange<float>(1000.f)));
        }
        MPI_Barrier(topo.comm());
        auto a = ndshm::mpi::node_array<double>::create(topo, {1000});
        if (topo.rank() == 0) {
            a.view() = 1.0;
        }
        a.bcast(0);
        auto obj = ndshm::mpi::node_object::share(topo, [] {
            params p;
            p.label = "per node";
            p.table = ndshm::shared_ndarray<double>::from_array(xt::arange<double>(16.0));
            return p;
        });
        ndshm::mpi::node_store st(topo, argv[1]);
        const auto x = st.get<float>("x");
        std::printf("rank %d (node %d, pid %d): node array '%s', node object '%s', store array '%s'\n", topo.rank(),
                    topo.node(), static_cast<int>(::getpid()), a.name().c_str(), obj.name().c_str(), x.name().c_str());
        std::fflush(stdout);
        MPI_Barrier(topo.comm());
        if (topo.rank() == 3) {
            std::raise(SIGKILL); // dies holding its mappings; the job is aborted
        }
        MPI_Barrier(topo.comm()); // never completes
        std::fprintf(stderr, "rank %d: the job was not aborted\n", topo.rank());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ndshm_mpi_crash: %s\n", e.what());
    }
    MPI_Finalize();
    return 1; // reaching this is a failure: the job should have been aborted
}
