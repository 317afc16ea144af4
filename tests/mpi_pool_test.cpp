// Tests of ndshm/mpi_pool.hpp. Run by ctest through mpiexec on 2 and on 4 ranks with
// NDSHM_MPI_EMULATED_NODES=2: with 4 ranks, worker 0 (rank 1) shares the driver's node and attaches its
// arrays by name, workers 1 and 2 (ranks 2, 3) are on the other node and get them by MPI; with 2 ranks
// the only worker is remote. Every call is checked against ndshm::fork_pool on the same data. Every rank
// runs every test case: each makes a pool, only the driver (rank 0) makes calls and checks.
#include <ndshm/inspect.hpp>
#include <ndshm/mpi_pool.hpp>
#include <ndshm/pool.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

namespace {

int world_size()
{
    int n = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

/// rows x cols of float64 with integer values (sums are exact whatever the chunking).
ndshm::shared_ndarray<double> make_data(std::size_t rows, std::size_t cols, ndshm::order o = ndshm::order::c)
{
    auto a = ndshm::shared_ndarray<double>::create({rows, cols}, o);
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) {
            a(i, j) = static_cast<double>((i * 7 + j * 3) % 101);
        }
    }
    return a;
}

template <class A, class B>
bool same(const A& a, const B& b)
{
    return a.shape() == b.shape() && static_cast<bool>(a.view() == b.view());
}

ndshm::shared_ndarray<double> copy_of(const ndshm::shared_ndarray<double>& a)
{
    auto c = ndshm::shared_ndarray<double>::create(a.shape(),
                                                   a.fortran_order() ? ndshm::order::fortran : ndshm::order::c);
    c.view() = a.view();
    return c;
}

// ---- tasks ---------------------------------------------------------------------------------------------

struct who {
    std::size_t index = 0, count = 0;
    bool in_worker = false;
    long pid = 0;
    template <class A>
    void serialize(A& ar)
    {
        ar(index, count, in_worker, pid);
    }
};

who whoami()
{
    const ndshm::worker_info w = ndshm::this_worker();
    return who{w.index, w.count, w.in_worker, static_cast<long>(::getpid())};
}

double add(double a, double b) { return a + b; }
std::string shout(std::string s, int times)
{
    std::string r;
    for (int i = 0; i < times; ++i) {
        r += s + "!";
    }
    return r;
}
int square(int x) { return x * x; }
double array_sum(ndshm::shared_ndarray<const double> a) { return xt::sum(a.view())(); }

/// Each worker writes its own element: writes of different workers to one array must all arrive.
void mark(ndshm::shared_ndarray<std::int64_t> a, std::int64_t base)
{
    const std::size_t i = ndshm::this_worker().index;
    a(i) = base + static_cast<std::int64_t>(i);
}

std::size_t doubled_rows(ndshm::chunk<double> c, double factor)
{
    c.view() *= factor;
    return c.size();
}

double chunk_sum(ndshm::chunk<const double> c) { return xt::sum(c.view())(); }
std::vector<double> chunk_firsts(ndshm::chunk<const double> c)
{
    std::vector<double> v;
    for (std::size_t i = 0; i < c.size(); ++i) {
        v.push_back(c(i, 0));
    }
    return v;
}
double chunk_max(ndshm::chunk<const double> c) { return c.empty() ? -1.0 : xt::amax(c.view())(); }
double chunk_min(ndshm::chunk<const double> c) { return c.empty() ? 1e300 : xt::amin(c.view())(); }
ndshm::shared_ndarray<double> chunk_row_sums(ndshm::chunk<const double> c)
{
    auto r = ndshm::shared_ndarray<double>::create({c.size()});
    for (std::size_t i = 0; i < c.size(); ++i) {
        r(i) = xt::sum(xt::view(c.view(), i))();
    }
    return r;
}
ndshm::shared_ndarray<double> chunk_column_sums(ndshm::chunk<const double> c)
{
    auto r = ndshm::shared_ndarray<double>::create({c.shape()[1]});
    r.view() = xt::sum(c.view(), {0});
    return r;
}
/// A histogram of the values (0..100) into 101 bins.
void histogram(ndshm::chunk<const double> c, ndshm::shared_ndarray<double>& partial)
{
    for (std::size_t i = 0; i < c.size(); ++i) {
        for (std::size_t j = 0; j < c.shape()[1]; ++j) {
            partial(static_cast<std::size_t>(c(i, j))) += 1.0;
        }
    }
}

std::string seen_name(ndshm::shared_ndarray<const double> a) { return a.name(); }

double affine(double x, double a, double b) { return a * x + b; }

void row_stats(ndshm::chunk<const double> in, ndshm::chunk<double> out)
{
    for (std::size_t i = 0; i < in.size(); ++i) {
        out(i, 0) = xt::sum(xt::view(in.view(), i))();
        out(i, 1) = xt::amax(xt::view(in.view(), i))();
    }
}

ndshm::shared_ndarray<double> make_filled(std::size_t n, double v)
{
    auto a = ndshm::shared_ndarray<double>::create({n});
    a.view() = v;
    return a;
}

ndshm::shared_ndarray<double> bump_and_return(ndshm::shared_ndarray<double> a)
{
    a(0) += 1.0;
    return a;
}

double fail_on(ndshm::chunk<const double> c, std::size_t row)
{
    if (row >= c.first() && row < c.last()) {
        throw std::runtime_error("row " + std::to_string(row) + " is cursed");
    }
    return 1.0;
}

int not_found_task(int)
{
    throw ndshm::not_found("no such thing", std::make_error_code(std::errc::no_such_file_or_directory));
}

} // namespace

TEST_CASE("mpi::pool: roles, workers and who shares the driver's node", "[mpi_pool]")
{
    ndshm::mpi::pool pool;
    const int n = world_size();
    CHECK(pool.driver() == (pool.topo().rank() == 0));
    CHECK(pool.size() == static_cast<std::size_t>(n - 1));
    if (pool.driver()) {
        const std::vector<who> all = pool.gather(&whoami);
        REQUIRE(all.size() == pool.concurrency());
        const std::vector<long> pids = pool.pids();
        for (std::size_t i = 0; i < all.size(); ++i) {
            CHECK(all[i].in_worker);
            CHECK(all[i].index == i);
            CHECK(all[i].count == pool.size());
            CHECK(all[i].pid == pids[i]);
            CHECK(pool.ranks()[i] == static_cast<int>(i) + 1);
            // 2 emulated nodes: ranks [0, n/2) and [n/2, n).
            CHECK(pool.shares_memory(i) == (static_cast<int>(i) + 1 < n / 2));
        }
        CHECK_FALSE(ndshm::this_worker().in_worker);
    }
}

TEST_CASE("mpi::pool: run, broadcast, gather and map over items give fork_pool's results", "[mpi_pool]")
{
    ndshm::mpi::pool pool;
    if (pool.driver()) {
        ndshm::fork_pool local(2);
        CHECK(pool.run(&add, 1.5, 2.0) == local.run(&add, 1.5, 2.0));
        CHECK(pool.run(&shout, std::string("hey"), 3) == "hey!hey!hey!");
        const std::vector<int> items{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
        CHECK(pool.map(&square, items) == local.map(&square, items));
        const auto a = make_data(37, 5);
        const ndshm::shared_ndarray<const double> ca = a;
        const double expected = local.run(&array_sum, ca);
        CHECK(pool.run(&array_sum, ca) == expected);
        const std::vector<double> sums = pool.gather(&array_sum, ca);
        CHECK(sums == std::vector<double>(pool.concurrency(), expected));
        // Every worker writes its own element of one array: all the writes arrive.
        auto marks = ndshm::shared_ndarray<std::int64_t>::create({pool.concurrency() + 2});
        marks(pool.concurrency()) = 99;
        pool.broadcast(&mark, marks, std::int64_t(100));
        auto local_marks = ndshm::shared_ndarray<std::int64_t>::create({pool.concurrency() + 2});
        local_marks(pool.concurrency()) = 99;
        for (std::size_t i = 0; i < pool.concurrency(); ++i) {
            local_marks(i) = 100 + static_cast<std::int64_t>(i);
        }
        CHECK(same(marks, local_marks));
    }
}

TEST_CASE("mpi::pool: scatter and scatterv write the rows back as fork_pool does", "[mpi_pool]")
{
    ndshm::mpi::pool pool;
    if (pool.driver()) {
        ndshm::fork_pool local(2);
        for (const auto o : {ndshm::order::c, ndshm::order::fortran}) {
            auto a = make_data(23, 4, o);
            auto b = copy_of(a);
            const std::vector<std::size_t> counts = pool.scatter(&doubled_rows, a, 2.0);
            local.scatter(&doubled_rows, b, 2.0);
            CHECK(same(a, b));
            CHECK(std::accumulate(counts.begin(), counts.end(), std::size_t(0)) == 23);
            CHECK(counts.size() == pool.concurrency());
            const std::vector<std::size_t> uneven{5, 0, 1, 9, 3, 5};
            CHECK(pool.scatterv(&doubled_rows, a, uneven, 0.5) == uneven);
            local.scatterv(&doubled_rows, b, uneven, 0.5);
            CHECK(same(a, b));
        }
    }
}

TEST_CASE("mpi::pool: map elementwise and by chunks give fork_pool's output", "[mpi_pool]")
{
    ndshm::mpi::pool pool;
    if (pool.driver()) {
        ndshm::fork_pool local(2);
        const auto in = make_data(50, 3);
        auto out = ndshm::shared_ndarray<double>::create({50, 3});
        auto expected = ndshm::shared_ndarray<double>::create({50, 3});
        pool.map(&affine, in, out, 2.0, -1.0);
        local.map(&affine, in, expected, 2.0, -1.0);
        CHECK(same(out, expected));

        auto stats = ndshm::shared_ndarray<double>::create({50, 2});
        auto stats_expected = ndshm::shared_ndarray<double>::create({50, 2});
        const ndshm::shared_ndarray<const double> cin = in;
        pool.map(&row_stats, cin, stats);
        local.map(&row_stats, cin, stats_expected);
        CHECK(same(stats, stats_expected));
    }
}

TEST_CASE("mpi::pool: map_reduce with every reducer gives fork_pool's result", "[mpi_pool]")
{
    ndshm::mpi::pool pool;
    if (pool.driver()) {
        ndshm::fork_pool local(2);
        const auto a = make_data(61, 4);
        const ndshm::shared_ndarray<const double> ca = a;
        CHECK(pool.map_reduce(&chunk_sum, ca, ndshm::reduce::sum) ==
              local.map_reduce(&chunk_sum, ca, ndshm::reduce::sum));
        CHECK(pool.map_reduce(&chunk_max, ca, ndshm::reduce::maximum) ==
              local.map_reduce(&chunk_max, ca, ndshm::reduce::maximum));
        CHECK(pool.map_reduce(&chunk_min, ca, ndshm::reduce::minimum) ==
              local.map_reduce(&chunk_min, ca, ndshm::reduce::minimum));
        CHECK(pool.map_reduce(&chunk_firsts, ca, ndshm::reduce::concatenate) ==
              local.map_reduce(&chunk_firsts, ca, ndshm::reduce::concatenate));
        CHECK(pool.map_reduce(&chunk_sum, ca, [](double x, double y) { return x + y; }) ==
              local.map_reduce(&chunk_sum, ca, [](double x, double y) { return x + y; }));
        // Arrays returned by the tasks: joined, or added elementwise.
        const auto rows = pool.map_reduce(&chunk_row_sums, ca, ndshm::reduce::concatenate);
        const auto rows_expected = local.map_reduce(&chunk_row_sums, ca, ndshm::reduce::concatenate);
        CHECK(same(rows, rows_expected));
        const auto cols = pool.map_reduce(&chunk_column_sums, ca, ndshm::reduce::sum);
        const auto cols_expected = local.map_reduce(&chunk_column_sums, ca, ndshm::reduce::sum);
        CHECK(same(cols, cols_expected));
        // add_into: per-worker accumulators, added into the caller's.
        auto hist = ndshm::shared_ndarray<double>::create({101});
        auto hist_expected = ndshm::shared_ndarray<double>::create({101});
        pool.map_reduce(&histogram, ca, ndshm::reduce::add_into(hist));
        local.map_reduce(&histogram, ca, ndshm::reduce::add_into(hist_expected));
        CHECK(same(hist, hist_expected));
        const double counted = xt::sum(hist.view())();
        CHECK(counted == 61.0 * 4.0);
    }
}

TEST_CASE("mpi::pool: arrays a task returns reach the driver, who owns them", "[mpi_pool]")
{
    ndshm::mpi::pool pool;
    if (pool.driver()) {
        {
            // One task per worker, so that workers on both nodes return one.
            const auto got = pool.gather(&make_filled, std::size_t(5), 2.5);
            for (const auto& g : got) {
                CHECK(g.shape() == ndshm::shape_type{5});
                CHECK(static_cast<bool>(xt::all(xt::equal(g.view(), 2.5))));
                const auto info = ndshm::inspect(g.name());
                REQUIRE(info.trailer);
                CHECK(info.trailer->creator_pid == static_cast<std::uint64_t>(::getpid()));
            }
        }
        // A task that returns its argument gives back the driver's own array, bumped once.
        auto a = ndshm::shared_ndarray<double>::create({3});
        const auto back = pool.run(&bump_and_return, a);
        CHECK(back.name() == a.name());
        CHECK(a(0) == 1.0);
    }
}

TEST_CASE("mpi::pool: a task's exception reaches the driver with its type and its rank", "[mpi_pool]")
{
    ndshm::mpi::pool pool;
    if (pool.driver()) {
        const auto a = make_data(40, 2);
        const ndshm::shared_ndarray<const double> ca = a;
        // Row 39 is in the last chunk, which runs on the last worker (remote with 2 emulated nodes).
        try {
            (void)pool.scatter(&fail_on, ca, std::size_t(39));
            FAIL("no exception");
        } catch (const ndshm::error& e) {
            const std::string what = e.what();
            CHECK(what.find("row 39 is cursed") != std::string::npos);
            CHECK(what.find("scatter on rank " + std::to_string(pool.ranks().back())) != std::string::npos);
        }
        CHECK_THROWS_AS(pool.run(&not_found_task, 1), ndshm::not_found);
        CHECK_THROWS_WITH(pool.map(&not_found_task, std::vector<int>{1, 2, 3}),
                          Catch::Contains("no such thing") && Catch::Contains("map on rank"));
        // The pool keeps working.
        const double total = xt::sum(a.view())();
        CHECK(pool.map_reduce(&chunk_sum, ca, ndshm::reduce::sum) == total);
        CHECK_THROWS_WITH(pool.scatterv(&chunk_sum, ca, {1, 2}), Catch::Contains("add up to 3"));
    }
}

TEST_CASE("mpi::pool: only the driver makes calls; a pool of one rank runs tasks in the driver", "[mpi_pool]")
{
    {
        ndshm::mpi::pool pool;
        if (!pool.driver()) {
            CHECK_THROWS_WITH(pool.run(&add, 1.0, 2.0), Catch::Contains("only the driver"));
        }
    }
    ndshm::mpi::pool self(MPI_COMM_SELF);
    REQUIRE(self.driver());
    CHECK(self.size() == 0);
    CHECK(self.concurrency() == 1);
    const auto a = make_data(9, 2);
    const ndshm::shared_ndarray<const double> ca = a;
    const double total = xt::sum(a.view())();
    CHECK(self.map_reduce(&chunk_sum, ca, ndshm::reduce::sum) == total);
    CHECK(self.gather(&whoami).at(0).pid == static_cast<long>(::getpid()));
}

TEST_CASE("mpi::pool: workers on the driver's node map its arrays, the others get copies", "[mpi_pool]")
{
    // Arrays travel in messages of at most 1000 bytes: transfers come in many pieces.
    ndshm::mpi::topology_options opt;
    opt.max_message_bytes = 1000;
    ndshm::mpi::pool pool(ndshm::mpi::topology(MPI_COMM_WORLD, opt));
    if (pool.driver()) {
        const auto a = make_data(300, 7);
        const std::vector<std::string> names = pool.gather(&seen_name, ndshm::shared_ndarray<const double>(a));
        for (std::size_t i = 0; i < names.size(); ++i) {
            CHECK((names[i] == a.name()) == pool.shares_memory(i));
        }
        auto b = copy_of(a);
        auto c = copy_of(a);
        pool.scatter(&doubled_rows, b, 2.0);
        c.view() *= 2.0;
        CHECK(same(b, c));
        const ndshm::shared_ndarray<const double> ca = a;
        const auto rows = pool.map_reduce(&chunk_row_sums, ca, ndshm::reduce::concatenate);
        const auto expected = ndshm::fork_pool(0).map_reduce(&chunk_row_sums, ca, ndshm::reduce::concatenate);
        CHECK(same(rows, expected));
    }
}

TEST_CASE("mpi::pool: a driver other than rank 0", "[mpi_pool]")
{
    const int n = world_size();
    ndshm::mpi::pool pool(MPI_COMM_WORLD, n - 1);
    CHECK(pool.driver() == (pool.topo().rank() == n - 1));
    if (pool.driver()) {
        auto a = make_data(17, 3);
        auto b = copy_of(a);
        pool.scatter(&doubled_rows, a, 3.0);
        b.view() *= 3.0;
        CHECK(same(a, b));
    }
}
