// xtensor operations through view() against the same operations on xtensor's own containers of the
// same shape and layout, side by side in one binary: 2048 x 4096 doubles (64 MiB), C and Fortran
// order (the benchmark argument: 0 = C, 1 = Fortran), every page warm; and element access by
// operator() and at(), one index pair at a time, beside xt::xarray's. Also from_array of an xtensor
// expression against raw shm_open + ftruncate + mmap + memcpy (fresh pages), and memcpy, the floor of
// assigning a contiguous container.
#include <ndshm/shared_ndarray.hpp>

#include <benchmark/benchmark.h>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

namespace {

constexpr std::size_t rows = 2048;
constexpr std::size_t cols = 4096;
constexpr std::int64_t MiB = 1024 * 1024;

const std::vector<std::size_t> shape{rows, cols};

const std::vector<double>& source()
{
    static const std::vector<double> s = [] {
        std::vector<double> v(rows * cols);
        std::iota(v.begin(), v.end(), 0.0);
        return v;
    }();
    return s;
}

bool fortran(const benchmark::State& state) { return state.range(0) == 1; }

xt::layout_type layout_of(const benchmark::State& state)
{
    return fortran(state) ? xt::layout_type::column_major : xt::layout_type::row_major;
}

/// The source as an adaptor in the state's layout (a contiguous container of the same layout).
auto source_adaptor(const benchmark::State& state)
{
    return xt::adapt<xt::layout_type::dynamic>(source().data(), source().size(), xt::no_ownership(), shape,
                                               layout_of(state));
}

/// A warm segment of the state's order, filled with the source.
ndshm::shared_ndarray<double> warm_array(const benchmark::State& state)
{
    auto a = ndshm::shared_ndarray<double>::create(shape, fortran(state) ? ndshm::order::fortran : ndshm::order::c);
    std::memcpy(a.data(), source().data(), a.nbytes());
    return a;
}

/// A warm xarray of the state's layout, filled with the source.
template <xt::layout_type L>
xt::xarray<double, L> warm_xarray()
{
    xt::xarray<double, L> x = xt::xarray<double, L>::from_shape(shape);
    std::memcpy(x.data(), source().data(), x.size() * sizeof(double));
    return x;
}

/// Runs `op(x)` on an xarray of the state's layout.
template <class Op>
void on_xarray(benchmark::State& state, Op op)
{
    if (fortran(state)) {
        auto x = warm_xarray<xt::layout_type::column_major>();
        for (auto _ : state) {
            op(x);
            benchmark::DoNotOptimize(x.data());
            benchmark::ClobberMemory();
        }
    } else {
        auto x = warm_xarray<xt::layout_type::row_major>();
        for (auto _ : state) {
            op(x);
            benchmark::DoNotOptimize(x.data());
            benchmark::ClobberMemory();
        }
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(rows * cols * sizeof(double)));
}

/// Runs `op(view)` on a warm segment of the state's order.
template <class Op>
void on_view(benchmark::State& state, Op op)
{
    auto a = warm_array(state);
    for (auto _ : state) {
        op(a.view());
        benchmark::DoNotOptimize(a.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(a.nbytes()));
}

// Each operation twice: through view() and on an xarray. The lambdas take the target by forwarding
// reference: a view is a prvalue, an xarray an lvalue.
#define NDSHM_VIEW_BENCH(name, body)                                                                                   \
    void BM_view_##name(benchmark::State& state)                                                                       \
    {                                                                                                                  \
        const auto src = source_adaptor(state);                                                                        \
        on_view(state, [&](auto&& t) { body; });                                                                       \
    }                                                                                                                  \
    void BM_xarray_##name(benchmark::State& state)                                                                     \
    {                                                                                                                  \
        const auto src = source_adaptor(state);                                                                        \
        on_xarray(state, [&](auto&& t) { body; });                                                                     \
    }                                                                                                                  \
    BENCHMARK(BM_view_##name)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);                                          \
    BENCHMARK(BM_xarray_##name)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

NDSHM_VIEW_BENCH(assign_container, t = src)
NDSHM_VIEW_BENCH(assign_expression, t = 2.0 * src + 1.0)
NDSHM_VIEW_BENCH(noalias_assign_expression, xt::noalias(t) = 2.0 * src + 1.0)
NDSHM_VIEW_BENCH(compound_scalar, t += 1.0)
NDSHM_VIEW_BENCH(compound_expression, t += src)
NDSHM_VIEW_BENCH(noalias_compound_expression, xt::noalias(t) += src * 0.5)
NDSHM_VIEW_BENCH(sum, benchmark::DoNotOptimize(xt::sum(t)()))
NDSHM_VIEW_BENCH(sum_axis0, benchmark::DoNotOptimize(xt::xarray<double>(xt::sum(t, {0}))))
NDSHM_VIEW_BENCH(slice_assign, xt::view(t, xt::range(0, rows / 2), xt::all()) = 3.0)
NDSHM_VIEW_BENCH(slice_assign_noalias, xt::noalias(xt::view(t, xt::range(0, rows / 2), xt::all())) = 3.0)
NDSHM_VIEW_BENCH(slice_assign_expression,
                 xt::view(t, xt::range(0, rows / 2), xt::all()) = xt::view(src, xt::range(rows / 2, rows), xt::all()))
NDSHM_VIEW_BENCH(slice_compound, xt::view(t, xt::all(), xt::range(0, cols / 2)) *= 1.0001)

#undef NDSHM_VIEW_BENCH

// Element access one index pair at a time, the loop people write: the handle's operator() and at()
// beside xt::xarray's, summing every element of the C-order array (the argument is always 0).

/// Sums every element of `a`, read one at a time by `get(a, i, j)`.
template <class A, class Get>
double sum_every(const A& a, Get get)
{
    double s = 0;
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) {
            s += get(a, i, j);
        }
    }
    return s;
}

const auto by_call = [](const auto& a, std::size_t i, std::size_t j) { return a(i, j); };
const auto by_at = [](const auto& a, std::size_t i, std::size_t j) { return a.at(i, j); };

/// Runs `sum_every(a, get)` on `a` (a warm handle or xarray of the C-order array).
template <class A, class Get>
void on_elements(benchmark::State& state, const A& a, Get get)
{
    for (auto _ : state) {
        benchmark::DoNotOptimize(sum_every(a, get));
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(rows * cols));
}

void BM_handle_element_call(benchmark::State& state) { on_elements(state, warm_array(state), by_call); }
void BM_xarray_element_call(benchmark::State& state)
{
    on_elements(state, warm_xarray<xt::layout_type::row_major>(), by_call);
}
void BM_handle_element_at(benchmark::State& state) { on_elements(state, warm_array(state), by_at); }
void BM_xarray_element_at(benchmark::State& state)
{
    on_elements(state, warm_xarray<xt::layout_type::row_major>(), by_at);
}
BENCHMARK(BM_handle_element_call)->Arg(0)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_xarray_element_call)->Arg(0)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_handle_element_at)->Arg(0)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_xarray_element_at)->Arg(0)->Unit(benchmark::kMillisecond);

/// The floor of assigning a contiguous container: memcpy into warm memory.
void BM_memcpy_64MiB_warm(benchmark::State& state)
{
    std::vector<double> dst(source().size());
    std::memcpy(dst.data(), source().data(), dst.size() * sizeof(double));
    for (auto _ : state) {
        std::memcpy(dst.data(), source().data(), dst.size() * sizeof(double));
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(dst.size() * sizeof(double)));
}
BENCHMARK(BM_memcpy_64MiB_warm)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// ---- from_array of an expression vs raw create + memcpy, fresh pages -------------------------------

void BM_from_array_expression(benchmark::State& state)
{
    const std::size_t n = static_cast<std::size_t>(state.range(0)) / sizeof(double);
    const std::vector<double> src(n, 1.5);
    for (auto _ : state) {
        auto a = ndshm::shared_ndarray<double>::from_array(
            xt::adapt(src.data(), n, xt::no_ownership(), std::vector<std::size_t>{n}));
        benchmark::DoNotOptimize(a.data());
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_from_array_expression)->Arg(MiB)->Arg(256 * MiB)->Unit(benchmark::kMicrosecond);

void BM_from_array_raw_memcpy(benchmark::State& state)
{
    const std::size_t bytes = static_cast<std::size_t>(state.range(0));
    const std::vector<double> src(bytes / sizeof(double), 1.5);
    const std::string path = "/ndshm_bench_view_raw_" + std::to_string(::getpid());
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
BENCHMARK(BM_from_array_raw_memcpy)->Arg(MiB)->Arg(256 * MiB)->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
