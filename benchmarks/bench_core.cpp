// The core against its limits, side by side in one binary (docs/performance.md):
// - attach by name vs raw shm_open + fstat + mmap, 1 KiB to 1 GiB;
// - create / from_array vs raw shm create + memcpy, cold (fresh pages) and warm (pages already
//   faulted in), and plain memcpy into warm memory;
// - memory: 4 processes reading one 1 GiB array, the sum of their Pss and the creator's once all four
//   have loaded it, vs a private copy per process.
#include <ndshm/all.hpp>

#include <cereal/types/string.hpp>

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

namespace {

constexpr std::int64_t KiB = 1024;
constexpr std::int64_t MiB = 1024 * KiB;
constexpr std::int64_t GiB = 1024 * MiB;

std::size_t doubles(std::int64_t bytes) { return static_cast<std::size_t>(bytes) / sizeof(double); }

// ---- attach -------------------------------------------------------------------------------------

// Attach as another process does: nothing of the segment is mapped here yet, so every attach opens,
// reads the header and the trailer and maps it (the creator's handle is gone; the name persists).
void BM_attach_ndshm(benchmark::State& state)
{
    auto a = ndshm::shared_ndarray<double>::create({doubles(state.range(0))});
    const std::string name = a.name();
    a.persist();
    a.reset();
    for (auto _ : state) {
        auto b = ndshm::shared_ndarray<double>::attach(name);
        benchmark::DoNotOptimize(b.data());
    }
    ndshm::unlink(name);
}

// Attach while this process has the segment mapped (here, by its creator's handle): the mapping is
// shared, no read and no mmap.
void BM_attach_ndshm_mapped(benchmark::State& state)
{
    auto a = ndshm::shared_ndarray<double>::create({doubles(state.range(0))});
    for (auto _ : state) {
        auto b = ndshm::shared_ndarray<double>::attach(a.name());
        benchmark::DoNotOptimize(b.data());
    }
}

// The raw sequence: shm_open, fstat, mmap, close, munmap; with what checking the header would add to
// it: one pread of the first page, reading the first byte through the mapping (a page fault), or
// mapping with MAP_POPULATE and reading the first byte (the page tables filled by mmap instead).
void raw_attach_and(benchmark::State& state, bool pread_page, bool touch, bool populate = false)
{
    auto a = ndshm::shared_ndarray<double>::create({doubles(state.range(0))});
    const std::string path = "/" + a.name();
    std::vector<unsigned char> page(4096);
    for (auto _ : state) {
        const int fd = ::shm_open(path.c_str(), O_RDWR, 0);
        struct stat st {};
        ::fstat(fd, &st);
        if (pread_page) {
            benchmark::DoNotOptimize(::pread(fd, page.data(), page.size(), 0));
        }
        void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE,
                         MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, 0);
        ::close(fd);
        if (touch) {
            benchmark::DoNotOptimize(*static_cast<volatile unsigned char*>(p));
        }
        benchmark::DoNotOptimize(p);
        ::munmap(p, static_cast<std::size_t>(st.st_size));
    }
}

void BM_attach_raw(benchmark::State& state) { raw_attach_and(state, false, false); }
void BM_attach_raw_pread(benchmark::State& state) { raw_attach_and(state, true, false); }
void BM_attach_raw_touch(benchmark::State& state) { raw_attach_and(state, false, true); }
void BM_attach_raw_populate_touch(benchmark::State& state) { raw_attach_and(state, false, true, true); }

// One system call that does no work (getppid): the fixed price of entering and leaving the kernel,
// which attach pays six or seven times.
void BM_null_system_call(benchmark::State& state)
{
    for (auto _ : state) {
        benchmark::DoNotOptimize(::syscall(SYS_getppid));
    }
}

// Attach with every system call answered from memory (the segment's bytes read once): what ndshm's own
// code costs per attach, without the kernel and without the cache misses that follow a system call.
namespace stub {
std::vector<unsigned char> bytes;
struct stat st {};
int open(const char*, int, mode_t) { return 1000; }
int fstat(int, struct stat* out) { return *out = st, 0; }
ssize_t pread(int, void* buf, std::size_t n, off_t off)
{
    const std::size_t k = std::min(n, bytes.size() - static_cast<std::size_t>(off));
    std::memcpy(buf, bytes.data() + off, k);
    return static_cast<ssize_t>(k);
}
void* mmap(void*, std::size_t, int, int, int, off_t) { return bytes.data(); }
int munmap(void*, std::size_t) { return 0; }
int close(int) { return 0; }
} // namespace stub

void BM_attach_ndshm_no_syscalls(benchmark::State& state)
{
    auto a = ndshm::shared_ndarray<double>::create({doubles(state.range(0))});
    const std::string name = a.name();
    a.persist();
    a.reset();
    const int fd = ::shm_open(("/" + name).c_str(), O_RDONLY, 0);
    ::fstat(fd, &stub::st);
    stub::bytes.resize(static_cast<std::size_t>(stub::st.st_size));
    const bool read_all = ::pread(fd, stub::bytes.data(), stub::bytes.size(), 0) == stub::st.st_size;
    ::close(fd);
    if (!read_all) {
        state.SkipWithError("could not read the segment");
    }
    {
        const auto saved = ndshm::detail::sys();
        auto& t = ndshm::detail::sys();
        t.shm_open = stub::open;
        t.fstat = stub::fstat;
        t.pread = stub::pread;
        t.mmap = stub::mmap;
        t.munmap = stub::munmap;
        t.close = stub::close;
        for (auto _ : state) {
            if (!read_all) {
                break;
            }
            auto b = ndshm::shared_ndarray<double>::attach(name);
            benchmark::DoNotOptimize(b.data());
        }
        ndshm::detail::sys() = saved;
    }
    stub::bytes = {};
    ndshm::unlink(name);
}

// ---- create, cold: every iteration fills fresh pages ----------------------------------------------

void BM_create_cold_ndshm_from_array(benchmark::State& state)
{
    const std::vector<double> src(doubles(state.range(0)), 1.5);
    for (auto _ : state) {
        auto a = ndshm::shared_ndarray<double>::from_array(src.data(), {src.size()});
        benchmark::DoNotOptimize(a.data());
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_create_cold_raw_memcpy(benchmark::State& state)
{
    const std::vector<double> src(doubles(state.range(0)), 1.5);
    const std::size_t bytes = src.size() * sizeof(double);
    const std::string path = "/ndshm_bench_raw_" + std::to_string(::getpid());
    for (auto _ : state) {
        const int fd = ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
            state.SkipWithError("shm_open/ftruncate failed");
            break;
        }
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ::close(fd);
        std::memcpy(p, src.data(), bytes);
        benchmark::DoNotOptimize(p);
        ::munmap(p, bytes);
        ::shm_unlink(path.c_str());
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_create_cold_ndshm_zeroed(benchmark::State& state)
{
    for (auto _ : state) {
        auto a = ndshm::shared_ndarray<double>::create({doubles(state.range(0))});
        benchmark::DoNotOptimize(a.data());
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

// ---- warm: the destination's pages are already faulted in ----------------------------------------

void BM_copy_warm_ndshm(benchmark::State& state)
{
    const std::vector<double> src(doubles(state.range(0)), 1.5);
    auto a = ndshm::shared_ndarray<double>::create({src.size()});
    std::memcpy(a.data(), src.data(), src.size() * sizeof(double)); // fault every page in
    for (auto _ : state) {
        std::memcpy(a.data(), src.data(), src.size() * sizeof(double));
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_copy_warm_memcpy(benchmark::State& state)
{
    const std::vector<double> src(doubles(state.range(0)), 1.5);
    std::vector<double> dst(src.size(), 0.0);
    for (auto _ : state) {
        std::memcpy(dst.data(), src.data(), src.size() * sizeof(double));
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

// ---- memory: Pss of 4 readers -------------------------------------------------------------------

/// Pss of process `pid` (0: this one) in KiB, from /proc/PID/smaps_rollup, or -1.
long pss_kib(pid_t pid = 0)
{
    std::ifstream f(pid == 0 ? std::string("/proc/self/smaps_rollup")
                             : "/proc/" + std::to_string(pid) + "/smaps_rollup");
    std::string key;
    long value = 0;
    std::string unit;
    while (f >> key) {
        if (key == "Pss:") {
            f >> value >> unit;
            return value;
        }
        std::getline(f, unit);
    }
    return -1;
}

/// Forks 4 readers. Each runs `body(loaded)`: body maps or copies the data, reads all of it and calls
/// loaded(checksum) while it still holds the data. Once every reader has loaded, this process reads
/// the Pss of the four readers and its own (the creator's: it holds the data too), so that every page
/// is shared by all who hold it when it is counted. Returns the sum in MiB.
template <class Body>
double sum_pss_of_four(Body body)
{
    constexpr int n = 4;
    int report[2], go[2];
    if (::pipe(report) != 0 || ::pipe(go) != 0) {
        return -1;
    }
    std::vector<pid_t> pids;
    for (int i = 0; i < n; ++i) {
        std::fflush(nullptr);
        const pid_t pid = ::fork();
        if (pid == 0) {
            body([&](double checksum) {
                const long msg = static_cast<long>(checksum);
                (void)!::write(report[1], &msg, sizeof msg);
                char c = 0;
                (void)!::read(go[0], &c, 1); // hold the data until every Pss is measured
            });
            ::_exit(0);
        }
        pids.push_back(pid);
    }
    long total = 0;
    for (int i = 0; i < n; ++i) {
        long msg = 0;
        if (::read(report[0], &msg, sizeof msg) != static_cast<ssize_t>(sizeof msg)) {
            total = -1024 * 1024;
            break;
        }
    }
    if (total == 0) { // every reader holds the data now
        for (pid_t pid : pids) {
            total += pss_kib(pid);
        }
        total += pss_kib();
    }
    const char bytes[n] = {};
    (void)!::write(go[1], bytes, n);
    for (pid_t pid : pids) {
        ::waitpid(pid, nullptr, 0);
    }
    for (int fd : {report[0], report[1], go[0], go[1]}) {
        ::close(fd);
    }
    return static_cast<double>(total) / 1024.0;
}

void BM_memory_4_readers_ndshm(benchmark::State& state)
{
    auto a = ndshm::shared_ndarray<double>::create({doubles(state.range(0))});
    std::fill(a.begin(), a.end(), 1.0);
    const std::string name = a.name();
    double mib = 0;
    for (auto _ : state) {
        mib = sum_pss_of_four([&](auto measure) {
            auto b = ndshm::shared_ndarray<const double>::attach(name);
            measure(std::accumulate(b.begin(), b.end(), 0.0));
        });
    }
    state.counters["pss_sum_MiB"] = mib;
}

void BM_memory_4_readers_private_copy(benchmark::State& state)
{
    auto a = ndshm::shared_ndarray<double>::create({doubles(state.range(0))});
    std::fill(a.begin(), a.end(), 1.0);
    const std::string name = a.name();
    double mib = 0;
    for (auto _ : state) {
        mib = sum_pss_of_four([&](auto measure) {
            auto b = ndshm::shared_ndarray<const double>::attach(name);
            std::vector<double> copy(b.begin(), b.end()); // what a copy-based IPC leaves each reader with
            b.reset();
            measure(std::accumulate(copy.begin(), copy.end(), 0.0));
        });
    }
    state.counters["pss_sum_MiB"] = mib;
}

/// A composite object holding a large array: what 4 readers of a loaded object share.
struct dataset {
    std::string label;
    ndshm::shared_ndarray<double> values;
    template <class A>
    void serialize(A& ar)
    {
        ar(label, values);
    }
};

void BM_memory_4_readers_object(benchmark::State& state)
{
    dataset d{"one array", ndshm::shared_ndarray<double>::create({doubles(state.range(0))})};
    std::fill(d.values.begin(), d.values.end(), 1.0);
    const ndshm::shared_object h = ndshm::share(d);
    d.values.reset();
    double mib = 0;
    for (auto _ : state) {
        mib = sum_pss_of_four([&](auto measure) {
            const auto loaded = ndshm::load<dataset>(h.name()); // the member is a view into the object
            measure(std::accumulate(loaded.values.begin(), loaded.values.end(), 0.0));
        });
    }
    state.counters["pss_sum_MiB"] = mib;
}

} // namespace

BENCHMARK(BM_attach_ndshm)->Arg(KiB)->Arg(MiB)->Arg(64 * MiB)->Arg(GiB);
BENCHMARK(BM_attach_ndshm_mapped)->Arg(KiB)->Arg(MiB)->Arg(64 * MiB)->Arg(GiB);
BENCHMARK(BM_attach_raw)->Arg(KiB)->Arg(MiB)->Arg(64 * MiB)->Arg(GiB);
BENCHMARK(BM_attach_raw_pread)->Arg(KiB)->Arg(MiB);
BENCHMARK(BM_attach_raw_touch)->Arg(KiB)->Arg(MiB);
BENCHMARK(BM_attach_raw_populate_touch)->Arg(KiB);
BENCHMARK(BM_null_system_call);
BENCHMARK(BM_attach_ndshm_no_syscalls)->Arg(KiB)->Arg(MiB);
BENCHMARK(BM_create_cold_ndshm_from_array)->Arg(64 * KiB)->Arg(MiB)->Arg(64 * MiB)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_create_cold_raw_memcpy)->Arg(64 * KiB)->Arg(MiB)->Arg(64 * MiB)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_create_cold_ndshm_zeroed)->Arg(64 * KiB)->Arg(MiB)->Arg(64 * MiB)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_copy_warm_ndshm)->Arg(64 * KiB)->Arg(MiB)->Arg(64 * MiB)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_copy_warm_memcpy)->Arg(64 * KiB)->Arg(MiB)->Arg(64 * MiB)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_memory_4_readers_ndshm)->Arg(GiB)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_memory_4_readers_object)->Arg(GiB)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_memory_4_readers_private_copy)->Arg(GiB)->Iterations(1)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
