// shared_dict and shared_list against what a program does without them: a std::map from keys to
// separately named array segments (and a std::vector of them for the list), side by side in one binary.
// Every entry is an array of 128 doubles (1 KiB) in a segment of its own, in every variant.
//
// Lookup of one key among N entries (keys visited in a scattered order), the handle dropped each time:
//   BM_lookup_dict/N              shared_dict::get<const double>(key): the lock, the hash index, the
//                                 record, then attach of the entry's segment (open, fstat, mmap)
//   BM_lookup_map_attach/N        std::map<std::string, std::string> (key -> segment name), then
//                                 shared_ndarray<const double>::attach(name)
//   ..._mapped/N                  the same while this process holds a handle of every entry, so that
//                                 attach shares the mapping it has (an open and an fstat, no mmap)
//   BM_lookup_map_handle/N        std::map<std::string, shared_ndarray<double>>: a handle copied, no
//                                 system call (the floor; usable by this process only)
// Insert of a new key, the container emptied (outside the timing) whenever it holds N entries:
//   BM_insert_dict/N              shared_dict::assign(key, xarray): a new segment, then the commit
//   BM_insert_map/N               shared_ndarray<double>::from_array(xarray) + std::map::emplace
// The list: BM_list_at/N against a std::vector of names + attach, BM_list_append/N against
// from_array + std::vector::push_back.
//
// Only a shared_dict or shared_list is one name that every process can open and change; the std::map
// lives in one process. Times are per operation. Build with -DNDSHM_BUILD_BENCHMARKS=ON
// -DCMAKE_BUILD_TYPE=Release; run bench_collections.
#include <ndshm/all.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace {

constexpr std::size_t n_elems = 128; // 1 KiB of doubles

const xt::xarray<double>& value()
{
    static const xt::xarray<double> v = xt::arange<double>(static_cast<double>(n_elems));
    return v;
}

std::vector<std::string> make_keys(std::size_t n)
{
    std::vector<std::string> keys;
    keys.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        keys.push_back("key_" + std::to_string(i));
    }
    return keys;
}

/// Position k of a walk that visits every one of n positions in a scattered order (7919 is a prime
/// that divides none of the sizes used).
std::size_t scattered(std::size_t k, std::size_t n) { return (k * 7919) % n; }

// ---- lookup ---------------------------------------------------------------------------------------

void lookup_dict(benchmark::State& state, bool mapped)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    const auto keys = make_keys(n);
    auto d = ndshm::shared_dict::create(n);
    std::vector<ndshm::shared_ndarray<const double>> held;
    for (const auto& k : keys) {
        d.assign(k, value());
        if (mapped) {
            held.push_back(d.get<const double>(k));
        }
    }
    std::size_t i = 0;
    for (auto _ : state) {
        auto a = d.get<const double>(keys[scattered(i++, n)]);
        benchmark::DoNotOptimize(a.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void lookup_map_attach(benchmark::State& state, bool mapped)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    const auto keys = make_keys(n);
    std::vector<ndshm::shared_ndarray<double>> owned; // with `mapped`, these keep every entry mapped
    std::map<std::string, std::string> names;
    for (const auto& k : keys) {
        owned.push_back(ndshm::shared_ndarray<double>::from_array(value()));
        names.emplace(k, owned.back().name());
        if (!mapped) {
            owned.back().persist(); // kept by name, unmapped here, as the dict's entries are
        }
    }
    if (!mapped) {
        owned.clear();
    }
    std::size_t i = 0;
    for (auto _ : state) {
        auto a = ndshm::shared_ndarray<const double>::attach(names.find(keys[scattered(i++, n)])->second);
        benchmark::DoNotOptimize(a.data());
    }
    if (!mapped) {
        for (const auto& kv : names) {
            ndshm::unlink(kv.second);
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_lookup_dict(benchmark::State& state) { lookup_dict(state, false); }
void BM_lookup_dict_mapped(benchmark::State& state) { lookup_dict(state, true); }
void BM_lookup_map_attach(benchmark::State& state) { lookup_map_attach(state, false); }
void BM_lookup_map_attach_mapped(benchmark::State& state) { lookup_map_attach(state, true); }

void BM_lookup_map_handle(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    const auto keys = make_keys(n);
    std::map<std::string, ndshm::shared_ndarray<double>> handles;
    for (const auto& k : keys) {
        handles.emplace(k, ndshm::shared_ndarray<double>::from_array(value()));
    }
    std::size_t i = 0;
    for (auto _ : state) {
        ndshm::shared_ndarray<double> a = handles.find(keys[scattered(i++, n)])->second;
        benchmark::DoNotOptimize(a.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---- insert ---------------------------------------------------------------------------------------

void BM_insert_dict(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    const auto keys = make_keys(n);
    auto d = ndshm::shared_dict::create(n);
    std::size_t i = 0;
    for (auto _ : state) {
        if (i == n) {
            state.PauseTiming();
            d.clear();
            i = 0;
            state.ResumeTiming();
        }
        d.assign(keys[i++], value());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_insert_map(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    const auto keys = make_keys(n);
    std::map<std::string, ndshm::shared_ndarray<double>> m;
    std::size_t i = 0;
    for (auto _ : state) {
        if (i == n) {
            state.PauseTiming();
            m.clear();
            i = 0;
            state.ResumeTiming();
        }
        m.emplace(keys[i++], ndshm::shared_ndarray<double>::from_array(value()));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---- the list -------------------------------------------------------------------------------------

void BM_list_at(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    auto l = ndshm::shared_list::create(n);
    for (std::size_t k = 0; k < n; ++k) {
        l.append(value());
    }
    std::size_t i = 0;
    for (auto _ : state) {
        auto a = l.at<const double>(scattered(i++, n));
        benchmark::DoNotOptimize(a.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_list_vector_attach(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    std::vector<ndshm::shared_ndarray<double>> owned;
    std::vector<std::string> names;
    for (std::size_t k = 0; k < n; ++k) {
        owned.push_back(ndshm::shared_ndarray<double>::from_array(value()));
        names.push_back(owned.back().name());
        owned.back().persist(); // kept by name, unmapped here, as the list's entries are
    }
    owned.clear();
    std::size_t i = 0;
    for (auto _ : state) {
        auto a = ndshm::shared_ndarray<const double>::attach(names[scattered(i++, n)]);
        benchmark::DoNotOptimize(a.data());
    }
    for (const auto& name : names) {
        ndshm::unlink(name);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_list_append(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    auto l = ndshm::shared_list::create(n);
    std::size_t i = 0;
    for (auto _ : state) {
        if (i == n) {
            state.PauseTiming();
            l.clear();
            i = 0;
            state.ResumeTiming();
        }
        l.append(value());
        ++i;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_list_vector_push_back(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    std::vector<ndshm::shared_ndarray<double>> v;
    for (auto _ : state) {
        if (v.size() == n) {
            state.PauseTiming();
            v.clear();
            state.ResumeTiming();
        }
        v.push_back(ndshm::shared_ndarray<double>::from_array(value()));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

} // namespace

BENCHMARK(BM_lookup_dict)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_lookup_map_attach)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_lookup_dict_mapped)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_lookup_map_attach_mapped)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_lookup_map_handle)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_insert_dict)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_insert_map)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_list_at)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_list_vector_attach)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_list_append)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_list_vector_push_back)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
