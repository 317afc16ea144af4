// One copy per node (ndshm::mpi) against one copy per rank (MPI_Bcast to every rank): the memory a
// dataset takes once every rank has read it, and the time to distribute it from rank 0.
//
//   NDSHM_MPI_EMULATED_NODES=2 mpiexec -n 4 ndshm_bench_mpi [--mib 512] [--reps 3] [--no-per-rank]
//
// A plain MPI program (Google Benchmark does not run under mpiexec); the table goes to stdout.
//
// - Memory: the sum, over the ranks of each node, of the growth of Pss (proportional set size: a page
//   mapped by k processes counts 1/k in each) from /proc/self/smaps_rollup, from before anything is
//   allocated to after every rank has read every element. The creating rank is included.
// - Distribution time, from a barrier to a barrier, after rank 0 has its data in memory:
//   one copy per rank: every rank allocates a buffer and MPI_Bcast fills it (1 GiB messages);
//   one copy per node: node_array::create (each leader creates and reserves its segment, the others
//   attach), rank 0 writes its node's copy (not timed: it is loading the data), node_array::bcast
//   (leader to leader). Also timed: node_array::from_root from a private buffer of rank 0 (create,
//   copy in, bcast), and a second bcast into the existing copies.
// Every rank checks every element it reads. Median of --reps runs.
#include <ndshm/mpi.hpp>

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace {

/// This process's Pss in KiB (/proc/self/smaps_rollup), or -1 where there is none.
long long pss_kib()
{
    std::ifstream in("/proc/self/smaps_rollup");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("Pss:", 0) == 0) {
            return std::strtoll(line.c_str() + 4, nullptr, 10);
        }
    }
    return -1;
}

double value_at(std::size_t i) { return static_cast<double>(i % 1024); }

/// Reads every element; true if they are the pattern's.
bool read_all(const double* p, std::size_t n)
{
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        sum += p[i];
    }
    return sum == static_cast<double>(n / 1024) * (1023.0 * 1024.0 / 2.0) && p[n - 1] == value_at(n - 1);
}

void fill(double* p, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i) {
        p[i] = value_at(i);
    }
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

struct measure {
    std::vector<double> seconds;
    std::vector<double> second_bcast;
    std::vector<long long> node_pss_kib; // the last run's Pss growth per node
    long long total_pss_kib = 0;
};

class bench {
public:
    bench(const ndshm::mpi::topology& topo, std::size_t n) : m_topo(topo), m_n(n) {}

    /// Pss growth of every node (KiB), summed over its ranks, since `before`; on every rank.
    std::vector<long long> node_growth(long long before) const
    {
        const long long mine = pss_kib() - before;
        std::vector<long long> all(static_cast<std::size_t>(m_topo.size()));
        MPI_Allgather(&mine, 1, MPI_LONG_LONG, all.data(), 1, MPI_LONG_LONG, m_topo.comm());
        std::vector<long long> nodes(static_cast<std::size_t>(m_topo.node_count()), 0);
        for (int r = 0; r < m_topo.size(); ++r) {
            nodes[static_cast<std::size_t>(m_topo.node_of(r))] += all[static_cast<std::size_t>(r)];
        }
        return nodes;
    }

    void check(bool ok, const char* what) const
    {
        int good = ok ? 1 : 0;
        int all = 0;
        MPI_Allreduce(&good, &all, 1, MPI_INT, MPI_MIN, m_topo.comm());
        if (!all) {
            if (m_topo.rank() == 0) {
                std::fprintf(stderr, "ndshm_bench_mpi: %s: a rank read wrong data\n", what);
            }
            MPI_Abort(m_topo.comm(), 1);
        }
    }

    double now() const
    {
        MPI_Barrier(m_topo.comm());
        return MPI_Wtime();
    }

    void bcast_chunked(double* p) const
    {
        auto* b = reinterpret_cast<unsigned char*>(p);
        const std::size_t bytes = m_n * sizeof(double);
        const std::size_t chunk = std::size_t(1) << 30;
        for (std::size_t off = 0; off < bytes; off += chunk) {
            MPI_Bcast(b + off, static_cast<int>(std::min(chunk, bytes - off)), MPI_BYTE, 0, m_topo.comm());
        }
    }

    void per_rank(measure& m) const
    {
        MPI_Barrier(m_topo.comm());
        const long long before = pss_kib();
        std::unique_ptr<double[]> src;
        if (m_topo.rank() == 0) { // rank 0 has the data: its copy is one of the copies
            src.reset(new double[m_n]);
            fill(src.get(), m_n);
        }
        const double t0 = now();
        std::unique_ptr<double[]> mine(m_topo.rank() == 0 ? src.release() : new double[m_n]);
        bcast_chunked(mine.get());
        const double t1 = now();
        bcast_chunked(mine.get()); // into existing copies
        const double t2 = now();
        check(read_all(mine.get(), m_n), "one copy per rank");
        record(m, t1 - t0, t2 - t1, node_growth(before));
    }

    void per_node(measure& m) const
    {
        MPI_Barrier(m_topo.comm());
        const long long before = pss_kib();
        const double t0 = now();
        auto a = ndshm::mpi::node_array<double>::create(m_topo, {m_n});
        const double t1 = now();
        if (m_topo.rank() == 0) { // loading the data into its node's copy: not timed
            fill(a.data(), m_n);
        }
        const double t2 = now();
        a.bcast(0);
        const double t3 = now();
        a.bcast(0); // into existing copies
        const double t4 = now();
        check(read_all(a.data(), m_n), "one copy per node");
        record(m, (t1 - t0) + (t3 - t2), t4 - t3, node_growth(before));
        a.release();
    }

    void from_root(measure& m) const
    {
        std::unique_ptr<double[]> src;
        if (m_topo.rank() == 0) {
            src.reset(new double[m_n]);
            fill(src.get(), m_n);
        }
        MPI_Barrier(m_topo.comm());
        const long long before = pss_kib();
        const double t0 = now();
        auto a = ndshm::mpi::node_array<double>::from_root(m_topo, src.get(), {m_n}, 0);
        const double t1 = now();
        check(read_all(a.data(), m_n), "one copy per node, from_root");
        record(m, t1 - t0, 0.0, node_growth(before));
        a.release();
    }

private:
    static void record(measure& m, double seconds, double again, std::vector<long long> nodes)
    {
        m.seconds.push_back(seconds);
        m.second_bcast.push_back(again);
        m.total_pss_kib = 0;
        for (const long long k : nodes) {
            m.total_pss_kib += k;
        }
        m.node_pss_kib = std::move(nodes);
    }

    const ndshm::mpi::topology& m_topo;
    std::size_t m_n;
};

std::string mib(long long kib)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f MiB", static_cast<double>(kib) / 1024.0);
    return buf;
}

std::string nodes_text(const std::vector<long long>& v)
{
    std::string s;
    for (std::size_t k = 0; k < v.size(); ++k) {
        s += (k ? ", " : "") + mib(v[k]);
    }
    return s;
}

} // namespace

int main(int argc, char** argv)
{
    MPI_Init(&argc, &argv);
    std::size_t mibs = 512;
    int reps = 3;
    bool baseline = true;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--mib" && i + 1 < argc) {
            mibs = std::strtoull(argv[++i], nullptr, 10);
        } else if (a == "--reps" && i + 1 < argc) {
            reps = std::max(1, std::atoi(argv[++i]));
        } else if (a == "--no-per-rank") {
            baseline = false;
        } else {
            std::fprintf(stderr, "usage: ndshm_bench_mpi [--mib N] [--reps R] [--no-per-rank]\n");
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    int rc = 0;
    try {
        const ndshm::mpi::topology topo;
        const std::size_t n = std::max<std::size_t>(mibs, 1) * (std::size_t(1) << 20) / sizeof(double);
        bench b(topo, n);
        measure rank_copies;
        measure node_copies;
        measure root_copies;
        for (int r = 0; r < reps; ++r) {
            if (baseline) {
                b.per_rank(rank_copies);
            }
            b.per_node(node_copies);
            b.from_root(root_copies);
        }
        if (topo.rank() == 0) {
            std::printf("%d ranks, %d nodes (%d emulated per machine), %zu MiB of float64, median of %d runs\n\n",
                        topo.size(), topo.node_count(), topo.emulated_nodes(), mibs, reps);
            std::printf("| approach | distribution | then a second bcast | Pss growth, all ranks | per node |\n");
            std::printf("| --- | --- | --- | --- | --- |\n");
            if (baseline) {
                std::printf("| one copy per rank: MPI_Bcast to every rank | %.3f s | %.3f s | %s | %s |\n",
                            median(rank_copies.seconds), median(rank_copies.second_bcast),
                            mib(rank_copies.total_pss_kib).c_str(), nodes_text(rank_copies.node_pss_kib).c_str());
            }
            std::printf("| one copy per node: node_array create + bcast | %.3f s | %.3f s | %s | %s |\n",
                        median(node_copies.seconds), median(node_copies.second_bcast),
                        mib(node_copies.total_pss_kib).c_str(), nodes_text(node_copies.node_pss_kib).c_str());
            std::printf("| one copy per node: node_array::from_root (copy in + bcast) | %.3f s | | %s | %s |\n",
                        median(root_copies.seconds), mib(root_copies.total_pss_kib).c_str(),
                        nodes_text(root_copies.node_pss_kib).c_str());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ndshm_bench_mpi: %s\n", e.what());
        rc = 1;
    }
    MPI_Finalize();
    return rc;
}
