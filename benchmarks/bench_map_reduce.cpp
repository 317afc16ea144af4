// fork_pool::map_reduce over a 1 GiB array of doubles, side by side in one binary with the same kernel
// run serially in this process and on 2 std::threads (the memory-bandwidth floor of two cores):
// - a total (reduce::sum of one double per chunk);
// - per-column sums of a 1 GiB array of 64 columns (reduce::add_into: per-worker accumulators in shared
//   memory, added into the caller's array), against the serial loop and 2 threads with an accumulator
//   each.
// The array is filled once, before any benchmark (warm pages); the pool is made once per benchmark, and
// its workers keep their mappings between tasks, so the first iteration also pays their page-table faults:
// a warm-up round keeps that out of the figures.
//
// Work done in other processes is invisible to CPU time: every benchmark reports real time.
// Build with -DNDSHM_BUILD_BENCHMARKS=ON -DCMAKE_BUILD_TYPE=Release; run bench_map_reduce.
#include <ndshm/pool.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t bytes = std::size_t{1} << 30;
constexpr std::size_t columns = 64;
constexpr std::size_t n = bytes / sizeof(double);

const ndshm::shared_ndarray<double>& data()
{
    static const ndshm::shared_ndarray<double> a = [] {
        auto x = ndshm::shared_ndarray<double>::create({n / columns, columns});
        double* p = x.data();
        for (std::size_t i = 0; i < n; ++i) {
            p[i] = static_cast<double>(i % 1000);
        }
        return x;
    }();
    return a;
}

// The kernels: four independent sums, so a core is bound by memory and not by the adder's latency.
double sum_range(const double* p, std::size_t count)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const std::size_t whole = count - count % 4;
    for (std::size_t i = 0; i < whole; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
    }
    for (std::size_t i = whole; i < count; ++i) {
        s0 += p[i];
    }
    return (s0 + s1) + (s2 + s3);
}

void column_sums_range(const double* p, std::size_t rows, double* acc)
{
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t j = 0; j < columns; ++j) {
            acc[j] += p[r * columns + j];
        }
    }
}

double chunk_total(ndshm::chunk<const double> c)
{
    return sum_range(c.array().data() + c.first() * columns, c.size() * columns);
}

void chunk_columns(ndshm::chunk<const double> c, ndshm::shared_ndarray<double>& partial)
{
    column_sums_range(c.array().data() + c.first() * columns, c.size(), partial.data());
}

void set_bytes(benchmark::State& state)
{
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

// ---- a total --------------------------------------------------------------------------------------

void BM_total_serial(benchmark::State& state)
{
    const double* p = data().data();
    for (auto _ : state) {
        benchmark::DoNotOptimize(sum_range(p, n));
    }
    set_bytes(state);
}

void BM_total_threads(benchmark::State& state)
{
    const double* p = data().data();
    const auto k = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        std::vector<double> part(k);
        std::vector<std::thread> t;
        for (std::size_t i = 0; i < k; ++i) {
            t.emplace_back([&, i] { part[i] = sum_range(p + i * n / k, (i + 1) * n / k - i * n / k); });
        }
        for (auto& x : t) {
            x.join();
        }
        double s = 0;
        for (const double x : part) {
            s += x;
        }
        benchmark::DoNotOptimize(s);
    }
    set_bytes(state);
}

void BM_total_map_reduce(benchmark::State& state)
{
    const ndshm::shared_ndarray<const double> a = data();
    ndshm::fork_pool pool(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        benchmark::DoNotOptimize(pool.map_reduce(chunk_total, a, ndshm::reduce::sum));
    }
    set_bytes(state);
}

// ---- per-column sums into an accumulator ----------------------------------------------------------

void BM_columns_serial(benchmark::State& state)
{
    const double* p = data().data();
    for (auto _ : state) {
        std::vector<double> acc(columns);
        column_sums_range(p, n / columns, acc.data());
        benchmark::DoNotOptimize(acc.data());
    }
    set_bytes(state);
}

void BM_columns_threads(benchmark::State& state)
{
    const double* p = data().data();
    const auto k = static_cast<std::size_t>(state.range(0));
    const std::size_t rows = n / columns;
    for (auto _ : state) {
        std::vector<std::vector<double>> acc(k, std::vector<double>(columns));
        std::vector<std::thread> t;
        for (std::size_t i = 0; i < k; ++i) {
            t.emplace_back([&, i] {
                column_sums_range(p + i * rows / k * columns, (i + 1) * rows / k - i * rows / k, acc[i].data());
            });
        }
        for (auto& x : t) {
            x.join();
        }
        for (std::size_t i = 1; i < k; ++i) {
            for (std::size_t j = 0; j < columns; ++j) {
                acc[0][j] += acc[i][j];
            }
        }
        benchmark::DoNotOptimize(acc[0].data());
    }
    set_bytes(state);
}

void BM_columns_map_reduce_add_into(benchmark::State& state)
{
    const ndshm::shared_ndarray<const double> a = data();
    ndshm::fork_pool pool(static_cast<std::size_t>(state.range(0)));
    auto acc = ndshm::shared_ndarray<double>::create({columns});
    for (auto _ : state) {
        pool.map_reduce(chunk_columns, a, ndshm::reduce::add_into(acc));
    }
    benchmark::DoNotOptimize(acc.data());
    set_bytes(state);
}

// Registered in one function, so that the data is made before the pools fork (their workers inherit
// nothing they need: they attach the array by name, as a user's workers do).
int registered = [] {
    for (auto* b : {benchmark::RegisterBenchmark("BM_total_serial", BM_total_serial),
                    benchmark::RegisterBenchmark("BM_total_threads", BM_total_threads)->Arg(2),
                    benchmark::RegisterBenchmark("BM_total_map_reduce", BM_total_map_reduce)->Arg(1)->Arg(2),
                    benchmark::RegisterBenchmark("BM_columns_serial", BM_columns_serial),
                    benchmark::RegisterBenchmark("BM_columns_threads", BM_columns_threads)->Arg(2),
                    benchmark::RegisterBenchmark("BM_columns_map_reduce_add_into", BM_columns_map_reduce_add_into)
                        ->Arg(1)
                        ->Arg(2)}) {
        b->UseRealTime()->Unit(benchmark::kMillisecond)->MinWarmUpTime(0.3);
    }
    return 0;
}();

} // namespace

int main(int argc, char** argv)
{
    benchmark::Initialize(&argc, argv);
    (void)data(); // filled once, warm, before any pool forks
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
