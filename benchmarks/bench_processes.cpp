// Processes, side by side with their baselines in one binary (docs/performance.md):
// - fork_pool dispatch overhead per task (persistent workers): one task's round trip, and the cost per
//   task of a map over many trivial items; baseline: one fork per task;
// - fork_pool map over a compute-bound kernel with 0 (in-process), 1 and 2 workers;
// - fork_pool map over a memory-bound pass (out = in + 1, 64 MiB) with 0, 1 and 2 workers, beside the
//   same pass in this process without a pool;
// - array_queue handoff of a 64 MiB array that the receiving process reads completely; baseline: the
//   same bytes sent through a pipe to a process that reads them into a warm buffer; reference: reading
//   64 MiB that the process already has mapped (the floor of any handoff whose receiver reads it all).
//
// Work done in other processes is invisible to CPU time: every benchmark here reports real time.
// Build with -DNDSHM_BUILD_BENCHMARKS=ON -DCMAKE_BUILD_TYPE=Release; run bench_processes.
#include <ndshm/all.hpp>

#include <benchmark/benchmark.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

namespace {

constexpr std::size_t MiB = 1024 * 1024;

// ---- dispatch overhead ----------------------------------------------------------------------------

int noop(int x) { return x + 1; }

void BM_pool_run_round_trip(benchmark::State& state)
{
    ndshm::fork_pool pool(static_cast<std::size_t>(state.range(0)));
    int x = 0;
    for (auto _ : state) {
        x = pool.run(noop, x);
    }
    benchmark::DoNotOptimize(x);
}

void BM_pool_map_trivial_items(benchmark::State& state)
{
    ndshm::fork_pool pool(static_cast<std::size_t>(state.range(0)));
    std::vector<int> items(1000);
    std::iota(items.begin(), items.end(), 0);
    for (auto _ : state) {
        auto r = pool.map(noop, items);
        benchmark::DoNotOptimize(r.data());
    }
    // Seconds per task (shown in us): the dispatch overhead a task pays in a map.
    state.counters["per_task"] = benchmark::Counter(
        static_cast<double>(items.size()), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_fork_per_task(benchmark::State& state)
{
    int x = 0;
    for (auto _ : state) {
        int fds[2];
        if (::pipe(fds) != 0) {
            state.SkipWithError("pipe failed");
            break;
        }
        const pid_t pid = ::fork();
        if (pid == 0) {
            const int r = noop(x);
            (void)!::write(fds[1], &r, sizeof r);
            ::_exit(0);
        }
        ::close(fds[1]);
        int r = 0;
        (void)!::read(fds[0], &r, sizeof r);
        ::close(fds[0]);
        ::waitpid(pid, nullptr, 0);
        x = r;
    }
    benchmark::DoNotOptimize(x);
}

// ---- compute-bound map ----------------------------------------------------------------------------

// About 3 us of dependent floating-point work per element: no memory traffic to speak of.
double heavy(double x)
{
    double y = x;
    for (int k = 0; k < 400; ++k) {
        y = std::sqrt(y * y + 1.0) - 0.5;
    }
    return y;
}

void BM_pool_map_compute(benchmark::State& state)
{
    const std::size_t n = 1 << 16;
    ndshm::fork_pool pool(static_cast<std::size_t>(state.range(0))); // 0: in-process, the serial baseline
    auto in = ndshm::shared_ndarray<double>::create({n});
    auto out = ndshm::shared_ndarray<double>::create({n});
    for (std::size_t i = 0; i < n; ++i) {
        in(i) = static_cast<double>(i % 1000);
    }
    pool.map(heavy, in, out); // warm: pages of both arrays faulted in, workers ready
    for (auto _ : state) {
        pool.map(heavy, in, out);
    }
    if (out(n - 1) != heavy(in(n - 1))) {
        state.SkipWithError("wrong result");
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(n));
}

// ---- memory-bound map: a pass over 64 MiB ---------------------------------------------------------

// out = in + 1 over 8 Mi doubles: as much memory traffic as arithmetic, so the cost of reaching the
// arrays (attaching them and faulting their pages in, in a worker) shows.
void add_one(ndshm::chunk<const double> in, ndshm::chunk<double> out)
{
    const double* a = in.array().data() + in.first() * (in.array().size() / in.array().shape()[0]);
    double* b = const_cast<double*>(out.array().data()) + out.first() * (out.array().size() / out.array().shape()[0]);
    const std::size_t n = in.size() * (in.array().size() / in.array().shape()[0]);
    for (std::size_t i = 0; i < n; ++i) {
        b[i] = a[i] + 1.0;
    }
}

void BM_pool_map_memory(benchmark::State& state)
{
    const std::size_t n = 8u << 20;
    ndshm::fork_pool pool(static_cast<std::size_t>(state.range(0)));
    auto in = ndshm::shared_ndarray<double>::create({n});
    auto out = ndshm::shared_ndarray<double>::create({n});
    for (std::size_t i = 0; i < n; ++i) {
        in(i) = static_cast<double>(i);
    }
    pool.map(add_one, in, out); // warm
    for (auto _ : state) {
        pool.map(add_one, in, out);
    }
    if (out(n - 1) != static_cast<double>(n)) {
        state.SkipWithError("wrong result");
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(2 * n * 8));
}

// The same pass in this process, without a pool: the serial baseline.
void BM_serial_memory(benchmark::State& state)
{
    const std::size_t n = 8u << 20;
    auto in = ndshm::shared_ndarray<double>::create({n});
    auto out = ndshm::shared_ndarray<double>::create({n});
    for (std::size_t i = 0; i < n; ++i) {
        in(i) = static_cast<double>(i);
    }
    add_one(ndshm::chunk<const double>(in, 0, n), ndshm::chunk<double>(out, 0, n));
    for (auto _ : state) {
        add_one(ndshm::chunk<const double>(in, 0, n), ndshm::chunk<double>(out, 0, n));
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(2 * n * 8));
}

// ---- 64 MiB handoff -------------------------------------------------------------------------------

// Reads every byte: the sum of all 64-bit words, four independent accumulators so that memory, not the
// adder, is the limit.
std::uint64_t read_all(const std::uint64_t* p, std::size_t n)
{
    std::uint64_t a = 0, b = 0, c = 0, d = 0;
    const std::size_t blocks = n / 4;
    for (std::size_t k = 0; k < blocks; ++k) {
        const std::uint64_t* q = p + 4 * k;
        a += q[0];
        b += q[1];
        c += q[2];
        d += q[3];
    }
    for (std::size_t i = 4 * blocks; i < n; ++i) {
        a += p[i];
    }
    return a + b + c + d;
}

// The floor of any handoff whose receiver reads everything: reading 64 MiB that this process already has
// mapped and faulted in.
void BM_read_64MiB_in_process(benchmark::State& state)
{
    const std::size_t words = 64 * MiB / sizeof(std::uint64_t);
    auto a = ndshm::shared_ndarray<std::uint64_t>::create({words});
    for (auto& x : a) {
        x = 3;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(read_all(a.data(), a.size()));
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(64 * MiB));
}

// Ping-pong: the parent pushes the array, the child pops it (now owning it), reads all of it and pushes
// it back; the parent pops it and pushes it again. One iteration = one handoff that is read completely
// (plus the return trip, which reads nothing). Arguments: populate (the receiver prefaults every page),
// read (0: the receiver does not read it, which isolates the cost of the handoff itself).
void BM_queue_handoff_64MiB(benchmark::State& state)
{
    const bool populate = state.range(0) != 0;
    const bool read = state.range(1) != 0;
    const std::size_t words = 64 * MiB / sizeof(std::uint64_t);
    auto to_child = ndshm::array_queue::create(1);
    auto to_parent = ndshm::array_queue::create(1);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        int code = 0;
        try {
            ndshm::options o;
            o.populate = populate; // the receiver maps every page up front (MAP_POPULATE)
            auto in = ndshm::array_queue::attach(to_child.name(), o);
            auto back = ndshm::array_queue::attach(to_parent.name());
            while (auto a = in.pop<std::uint64_t>()) {
                if (read && read_all(a.data(), a.size()) != static_cast<std::uint64_t>(words) * 3u) {
                    code = 2;
                }
                back.push(std::move(a));
            }
        } catch (...) {
            code = 1;
        }
        ::_exit(code);
    }
    auto a = ndshm::shared_ndarray<std::uint64_t>::create({words});
    for (auto& x : a) {
        x = 3; // warm: written once, before timing
    }
    for (auto _ : state) {
        to_child.push(std::move(a));
        a = to_parent.pop<std::uint64_t>();
    }
    to_child.close();
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        state.SkipWithError("the consumer failed");
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(64 * MiB));
}

// The same bytes through a pipe: written from a warm buffer in 1 MiB writes, read straight into the
// consumer's warm 64 MiB buffer, then read completely as above; the consumer answers with one byte.
void BM_pipe_copy_64MiB(benchmark::State& state)
{
    const std::size_t bytes = 64 * MiB;
    int data[2], ack[2];
    if (::pipe(data) != 0 || ::pipe(ack) != 0) {
        state.SkipWithError("pipe failed");
        return;
    }
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(data[1]);
        ::close(ack[0]);
        std::vector<std::uint64_t> buf(bytes / sizeof(std::uint64_t), 0); // warm: zero-filled once
        auto* p = reinterpret_cast<char*>(buf.data());
        for (;;) {
            std::size_t got = 0;
            while (got < bytes) {
                const ssize_t r = ::read(data[0], p + got, bytes - got);
                if (r <= 0) {
                    ::_exit(got == 0 ? 0 : 1);
                }
                got += static_cast<std::size_t>(r);
            }
            const char ok = read_all(buf.data(), buf.size()) == buf.size() * 3u ? 1 : 0;
            (void)!::write(ack[1], &ok, 1);
        }
    }
    ::close(data[0]);
    ::close(ack[1]);
    std::vector<std::uint64_t> src(bytes / sizeof(std::uint64_t), 3);
    const auto* s = reinterpret_cast<const char*>(src.data());
    bool ok = true;
    for (auto _ : state) {
        for (std::size_t put = 0; put < bytes;) {
            const ssize_t r = ::write(data[1], s + put, std::min<std::size_t>(MiB, bytes - put));
            if (r <= 0) {
                ok = false;
                break;
            }
            put += static_cast<std::size_t>(r);
        }
        char c = 0;
        ok = ok && ::read(ack[0], &c, 1) == 1 && c == 1;
    }
    ::close(data[1]);
    ::close(ack[0]);
    ::waitpid(pid, nullptr, 0);
    if (!ok) {
        state.SkipWithError("the pipe consumer failed");
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

} // namespace

BENCHMARK(BM_pool_run_round_trip)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_pool_map_trivial_items)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_fork_per_task)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_pool_map_compute)->Arg(0)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_pool_map_memory)->Arg(0)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_serial_memory)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_queue_handoff_64MiB)
    ->ArgNames({"populate", "read"})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({0, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_pipe_copy_64MiB)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_read_64MiB_in_process)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
