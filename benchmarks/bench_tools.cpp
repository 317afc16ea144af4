// What listing and inspecting segments costs (inspect.hpp; `ndshm ls`, `info`, `gc`), side by side with
// the least any listing must do: readdir, then open, fstat and pread of the header page and of the
// trailer of each segment, with no checks at all. Also: that the cost does not grow with the size of
// a segment (nothing is mapped or read beyond the header and the trailer), and what `ndshm info`
// adds by looking for the processes that have a segment open or mapped (a walk over /proc).
//
//   bench_tools --benchmark_filter=.
#include <ndshm/any_ndarray.hpp>
#include <ndshm/inspect.hpp>
#include <ndshm/shared_ndarray.hpp>

#include <benchmark/benchmark.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace {

/// A private directory backend holding `count` float64 arrays of `bytes` data bytes each, owned by
/// this process and removed with the directory at scope end.
struct segment_dir {
    std::string path;
    ndshm::options opt;
    std::vector<ndshm::shared_ndarray<double>> arrays;

    segment_dir(std::size_t count, std::size_t bytes)
    {
        char tmpl[] = "/dev/shm/bench-tools-XXXXXX"; // tmpfs, like /dev/shm itself
        if (::mkdtemp(tmpl) == nullptr) {
            std::abort();
        }
        path = tmpl;
        opt.directory = path;
        for (std::size_t i = 0; i < count; ++i) {
            arrays.push_back(ndshm::shared_ndarray<double>::create({bytes / sizeof(double)}, opt));
        }
    }
    segment_dir(const segment_dir&) = delete;
    segment_dir& operator=(const segment_dir&) = delete;
    ~segment_dir()
    {
        arrays.clear();
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

/// The floor: every step a listing needs, with no validation, no parsing and no allocation per entry.
std::size_t raw_scan(const std::string& dir)
{
    std::size_t found = 0;
    DIR* d = ::opendir(dir.c_str());
    static unsigned char head[4096];
    static unsigned char trailer[256];
    while (const dirent* e = ::readdir(d)) {
        if (std::strncmp(e->d_name, "ndshm_", 6) != 0) {
            continue;
        }
        const int fd = ::openat(::dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        struct stat st {};
        if (fd >= 0 && ::fstat(fd, &st) == 0 && st.st_size >= 4096 + 256 &&
            ::pread(fd, head, sizeof head, 0) == static_cast<ssize_t>(sizeof head) &&
            ::pread(fd, trailer, sizeof trailer, st.st_size - 256) == static_cast<ssize_t>(sizeof trailer)) {
            found += trailer[0] == 'N' ? 1 : 0;
        }
        if (fd >= 0) {
            ::close(fd);
        }
    }
    ::closedir(d);
    return found;
}

void BM_list_segments(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    segment_dir d(n, 4096);
    for (auto _ : state) {
        const auto v = ndshm::list_segments(d.opt);
        if (v.size() != n) {
            state.SkipWithError("wrong count");
        }
        benchmark::DoNotOptimize(v.data());
    }
    state.counters["per_segment"] = benchmark::Counter(
        static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_raw_scan(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    segment_dir d(n, 4096);
    for (auto _ : state) {
        if (raw_scan(d.path) != n) {
            state.SkipWithError("wrong count");
        }
    }
    state.counters["per_segment"] = benchmark::Counter(
        static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// One segment of growing size: list_segments reads its header page and its trailer only.
void BM_list_by_size(benchmark::State& state)
{
    segment_dir d(1, static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        benchmark::DoNotOptimize(ndshm::list_segments(d.opt).data());
    }
}

void BM_raw_scan_by_size(benchmark::State& state)
{
    segment_dir d(1, static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        benchmark::DoNotOptimize(raw_scan(d.path));
    }
}

// `ndshm info`: inspect() adds the walk over /proc that finds the processes using the segment.
void BM_inspect_with_users(benchmark::State& state)
{
    segment_dir d(1, 4096);
    const std::string name = d.arrays[0].name();
    for (auto _ : state) {
        const auto s = ndshm::inspect(name, d.opt);
        if (s.users.size() != 1) {
            state.SkipWithError("this process should be the only user");
        }
    }
}

// For scale: attaching the same segment by name (it maps the segment, which inspect never does).
void BM_attach_any(benchmark::State& state)
{
    segment_dir d(1, 4096);
    const std::string name = d.arrays[0].name();
    for (auto _ : state) {
        benchmark::DoNotOptimize(ndshm::attach_any(name, d.opt).data());
    }
}

} // namespace

BENCHMARK(BM_list_segments)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_raw_scan)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_list_by_size)->Arg(4096)->Arg(1 << 20)->Arg(1 << 30)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_raw_scan_by_size)->Arg(4096)->Arg(1 << 20)->Arg(1 << 30)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_inspect_with_users)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_attach_any)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
