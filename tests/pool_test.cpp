// ndshm::fork_pool: persistent forked workers; map over shared arrays checked element by element;
// scatter, gather and broadcast; exceptions and crashes (abort, SIGSEGV, exit, kill -9 mid-task)
// reported to the caller and the worker replaced; pool(0) runs the same API in-process.
#include <ndshm/pool.hpp>
#include <ndshm/segment.hpp>

#include "sys_counter.hpp"
#include "test_util.hpp"

#include <catch2/catch.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xview.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using ndshm::chunk;
using ndshm::fork_pool;
using ndshm::shared_ndarray;

namespace {

// ---- task functions: plain functions, the same address in every worker ------------------------------

long worker_pid() { return static_cast<long>(::getpid()); }

int add(int a, const int& b) { return a + b; }

std::string greet(const std::string& who, std::vector<int> v) { return who + ":" + std::to_string(v.size()); }

double square_plus(double x, double c) { return x * x + c; }

void row_sums(chunk<const double> in, chunk<double> out)
{
    for (std::size_t i = 0; i < in.size(); ++i) {
        double s = 0;
        for (std::size_t j = 0; j < in.shape()[1]; ++j) {
            s += in(i, j);
        }
        out(i) = s;
    }
}

void scale_rows(chunk<const float> in, chunk<float> out, float factor) { out.view() = in.view() * factor; }

// (first, last, worker index) of the chunk a worker got.
std::tuple<std::size_t, std::size_t, std::size_t> which_rows(chunk<const int> c)
{
    return {c.first(), c.last(), ndshm::this_worker().index};
}

void count_rows(chunk<int> c)
{
    for (std::size_t i = 0; i < c.size(); ++i) {
        c(i) += 1;
    }
}

std::size_t my_index() { return ndshm::this_worker().index; }

int g_setting = 0; // per-worker state that broadcast sets
void set_setting(int v) { g_setting = v; }
int get_setting() { return g_setting; }

double total(shared_ndarray<const double> a)
{
    double s = 0;
    for (const double x : a) {
        s += x;
    }
    return s;
}

shared_ndarray<std::int32_t> make_array(std::size_t n, std::int32_t value)
{
    auto a = shared_ndarray<std::int32_t>::create({n});
    for (auto& x : a) {
        x = value;
    }
    return a; // the caller of the pool becomes its owner
}

int throw_runtime(int) { throw std::runtime_error("the task failed on purpose"); }

int throw_not_found(int)
{
    ndshm::detail::raise<ndshm::not_found>("look up", "ndshm_test_nothing", "no such thing", "", std::error_code());
}

int throw_dtype_mismatch(int)
{
    ndshm::detail::raise<ndshm::dtype_mismatch>("attach", "ndshm_test_nothing", "float32, not float64", "",
                                                ndshm::make_error_code(ndshm::errc::dtype_mismatch));
}

int throw_errno(int)
{
    ndshm::detail::raise<ndshm::error>("open", "ndshm_test_nothing", "no", "", ndshm::detail::errno_code(EMFILE));
}

int die_abort(int)
{
    std::signal(SIGABRT, SIG_DFL); // the test framework's crash handler is not what a worker has
    std::abort();
}

int die_segv(int)
{
    std::signal(SIGSEGV, SIG_DFL);
    std::raise(SIGSEGV);
    return 0;
}

int die_exit(int code) { std::exit(code); }

// The kill -9 test: the task records its pid, tells the parent it started, then waits forever.
shared_ndarray<std::int64_t>* g_started_pid = nullptr;
test_util::event* g_started = nullptr;
test_util::event* g_never = nullptr;

int wait_to_be_killed(int)
{
    (*g_started_pid)(0) = static_cast<std::int64_t>(::getpid());
    g_started->set();
    g_never->wait();
    return 0;
}

} // namespace

TEST_CASE("a pool runs tasks in persistent worker processes", "[pool]")
{
    fork_pool pool(2);
    REQUIRE(pool.size() == 2);
    const auto pids = pool.pids();
    REQUIRE(pids.size() == 2);
    std::set<long> seen;
    for (int i = 0; i < 8; ++i) {
        const long pid = pool.run(worker_pid);
        CHECK(pid != static_cast<long>(::getpid()));
        seen.insert(pid);
    }
    // The same workers serve every call: no fork per call.
    CHECK(seen == std::set<long>(pids.begin(), pids.end()));
    CHECK(pool.pids() == pids);
    CHECK(pool.run(add, 2, 40) == 42);
    CHECK(pool.run(greet, std::string("w"), std::vector<int>{1, 2, 3}) == "w:3");
    CHECK_FALSE(ndshm::this_worker().in_worker);
}

TEST_CASE("map over a shared array, checked element by element", "[pool]")
{
    fork_pool pool(3);
    SECTION("an element function over a 1-d array")
    {
        const std::size_t n = 10007; // not a multiple of the chunk count
        auto in = shared_ndarray<double>::create({n});
        for (std::size_t i = 0; i < n; ++i) {
            in(i) = static_cast<double>(i);
        }
        auto out = shared_ndarray<double>::create({n});
        pool.map(square_plus, in, out, 3.0);
        for (std::size_t i = 0; i < n; ++i) {
            REQUIRE(out(i) == static_cast<double>(i) * static_cast<double>(i) + 3.0);
        }
    }
    SECTION("an element function over Fortran-order 2-d arrays")
    {
        auto in = shared_ndarray<double>::create({7, 5}, ndshm::order::fortran);
        auto out = shared_ndarray<double>::create({7, 5}, ndshm::order::fortran);
        for (std::size_t i = 0; i < 7; ++i) {
            for (std::size_t j = 0; j < 5; ++j) {
                in(i, j) = static_cast<double>(10 * i + j);
            }
        }
        pool.map(square_plus, in, out, -1.0);
        for (std::size_t i = 0; i < 7; ++i) {
            for (std::size_t j = 0; j < 5; ++j) {
                REQUIRE(out(i, j) == in(i, j) * in(i, j) - 1.0);
            }
        }
    }
    SECTION("a chunk kernel: row sums of a 2-d array into a 1-d array")
    {
        const std::size_t rows = 1001, cols = 3;
        auto in = shared_ndarray<double>::create({rows, cols});
        for (std::size_t i = 0; i < rows; ++i) {
            for (std::size_t j = 0; j < cols; ++j) {
                in(i, j) = static_cast<double>(i * cols + j);
            }
        }
        auto out = shared_ndarray<double>::create({rows});
        pool.map(row_sums, in, out);
        for (std::size_t i = 0; i < rows; ++i) {
            REQUIRE(out(i) == static_cast<double>(3 * i * cols + 3));
        }
    }
    SECTION("a chunk kernel through xtensor views, with an extra argument")
    {
        auto in = shared_ndarray<float>::create({50, 4});
        for (std::size_t k = 0; k < in.size(); ++k) {
            in.data()[k] = static_cast<float>(k);
        }
        auto out = shared_ndarray<float>::create({50, 4});
        pool.map(scale_rows, in, out, 2.0f);
        for (std::size_t k = 0; k < out.size(); ++k) {
            REQUIRE(out.data()[k] == 2.0f * static_cast<float>(k));
        }
    }
    SECTION("map over a vector of items returns the results in order")
    {
        std::vector<int> items(100);
        for (int i = 0; i < 100; ++i) {
            items[static_cast<std::size_t>(i)] = i;
        }
        const std::vector<int> r = pool.map(add, items, 1000);
        REQUIRE(r.size() == 100);
        for (int i = 0; i < 100; ++i) {
            CHECK(r[static_cast<std::size_t>(i)] == 1000 + i);
        }
    }
    SECTION("arrays of different shapes are refused")
    {
        auto in = shared_ndarray<double>::create({4});
        auto out = shared_ndarray<double>::create({5});
        CHECK_THROWS_WITH(pool.map(square_plus, in, out, 0.0), Catch::Contains("shape"));
        CHECK_THROWS_WITH(pool.map(row_sums, shared_ndarray<double>::create({4, 2}), out), Catch::Contains("axis 0"));
    }
}

TEST_CASE("scatter, gather and broadcast address each worker", "[pool]")
{
    fork_pool pool(3);
    auto a = shared_ndarray<int>::create({10});
    SECTION("scatter splits axis 0 unevenly, chunk i to worker i")
    {
        const auto r = pool.scatter(which_rows, a);
        REQUIRE(r.size() == 3);
        CHECK(r[0] == std::make_tuple(std::size_t{0}, std::size_t{4}, std::size_t{0}));
        CHECK(r[1] == std::make_tuple(std::size_t{4}, std::size_t{7}, std::size_t{1}));
        CHECK(r[2] == std::make_tuple(std::size_t{7}, std::size_t{10}, std::size_t{2}));
    }
    SECTION("scatterv takes chunk sizes, and more chunks than workers")
    {
        const auto r = pool.scatterv(which_rows, a, {1, 5, 0, 4});
        REQUIRE(r.size() == 4);
        CHECK(r[0] == std::make_tuple(std::size_t{0}, std::size_t{1}, std::size_t{0}));
        CHECK(r[1] == std::make_tuple(std::size_t{1}, std::size_t{6}, std::size_t{1}));
        CHECK(r[2] == std::make_tuple(std::size_t{6}, std::size_t{6}, std::size_t{2}));
        CHECK(r[3] == std::make_tuple(std::size_t{6}, std::size_t{10}, std::size_t{0}));
        CHECK_THROWS_WITH(pool.scatterv(which_rows, a, {1, 2}), Catch::Contains("add up"));
    }
    SECTION("a scatter that writes: every row touched exactly once")
    {
        pool.scatter(count_rows, a);
        for (std::size_t i = 0; i < a.size(); ++i) {
            CHECK(a(i) == 1);
        }
    }
    SECTION("gather returns one result per worker, in worker order")
    {
        CHECK(pool.gather(my_index) == std::vector<std::size_t>{0, 1, 2});
        CHECK(pool.gather(worker_pid) == pool.pids());
    }
    SECTION("broadcast gives every worker the same value")
    {
        pool.broadcast(set_setting, 17);
        CHECK(pool.gather(get_setting) == std::vector<int>{17, 17, 17});
        CHECK(g_setting == 0); // the parent's copy is untouched
    }
}

TEST_CASE("shared arrays travel as handles, both ways", "[pool]")
{
    fork_pool pool(2);
    auto a = shared_ndarray<double>::create({1000});
    for (std::size_t i = 0; i < a.size(); ++i) {
        a(i) = 1.5;
    }
    CHECK(pool.run(total, a) == 1500.0);
    // An array a worker creates and returns is owned by the caller afterwards.
    auto made = pool.run(make_array, std::size_t{64}, std::int32_t{9});
    REQUIRE(made.size() == 64);
    CHECK(made(63) == 9);
    const std::string name = made.name();
    CHECK(ndshm::detail::array_access::mapping_of(made)->get_trailer()->creator_pid ==
          static_cast<std::uint64_t>(::getpid()));
    CHECK(test_util::shm_exists(name));
    made.reset(); // the caller's last handle unlinks it
    CHECK_FALSE(test_util::shm_exists(name));
}

namespace {

std::uintptr_t address_of(shared_ndarray<const double> a) { return reinterpret_cast<std::uintptr_t>(a.data()); }

} // namespace

TEST_CASE("a pool without workers hands arrays to its tasks in the caller's own mapping", "[pool]")
{
    // A read-only argument of a writable array: no second, read-only mapping whose pages every task
    // would fault in again.
    fork_pool pool(0);
    auto a = shared_ndarray<double>::create({1000});
    a(999) = 2.0;
    CHECK(pool.run(address_of, a) == reinterpret_cast<std::uintptr_t>(a.data()));
    CHECK(pool.run(total, a) == 2.0);
    // An array this process maps only read-only is attached as before (and reads the same bytes).
    auto other = shared_ndarray<double>::create({4});
    other(1) = 5.0;
    const shared_ndarray<const double> ro = shared_ndarray<const double>::attach(other.name());
    other.persist();
    other.reset(); // no writable mapping of it is left in this process
    CHECK(pool.run(total, ro) == 5.0);
    CHECK(pool.run(address_of, ro) == reinterpret_cast<std::uintptr_t>(ro.data()));
    ndshm::unlink(ro.name());
}

TEST_CASE("a handle on part of a larger segment is refused as an argument", "[pool][errors]")
{
    fork_pool pool(1);
    auto whole = shared_ndarray<double>::create({8});
    ndshm::detail::npy_info part;
    part.type = ndshm::dtype::float64;
    part.shape = {4};
    part.size = 4;
    part.nbytes = 32;
    part.data_offset = 4096;
    const shared_ndarray<const double> view = ndshm::detail::array_access::make<double>(
        ndshm::detail::array_access::mapping_of(whole), part);
    CHECK_THROWS_WITH(pool.run(total, view), Catch::Contains("part of a larger segment"));
    CHECK(pool.run(total, whole) == 0.0);
}

TEST_CASE("a task's exception is thrown by the call, with the worker's message", "[pool][errors]")
{
    fork_pool pool(2);
    const auto pids = pool.pids();
    CHECK_THROWS_AS(pool.run(throw_runtime, 1), ndshm::error);
    CHECK_THROWS_WITH(pool.run(throw_runtime, 1),
                      Catch::Contains("the task failed on purpose") && Catch::Contains("worker"));
    // ndshm's own exception types arrive as such.
    CHECK_THROWS_AS(pool.run(throw_not_found, 1), ndshm::not_found);
    // ... with their error code and its category.
    try {
        pool.run(throw_dtype_mismatch, 1);
        FAIL("no exception");
    } catch (const ndshm::dtype_mismatch& e) {
        CHECK(e.code() == ndshm::errc::dtype_mismatch);
        CHECK(e.code().category() == ndshm::error_category());
    }
    try {
        pool.run(throw_errno, 1);
        FAIL("no exception");
    } catch (const ndshm::error& e) {
        CHECK(e.code() == std::errc::too_many_files_open);
        CHECK(e.code().category() == std::generic_category());
    }
    // One failing item fails the map, after the others finished; the workers keep running.
    CHECK_THROWS_WITH(pool.map(throw_runtime, std::vector<int>{1, 2, 3}), Catch::Contains("on purpose"));
    CHECK(pool.pids() == pids);
    CHECK(pool.run(add, 1, 1) == 2);
}

TEST_CASE("a worker that crashes makes the call throw, and is replaced", "[pool][fault]")
{
    fork_pool pool(2);
    const auto check_crash = [&](int (*task)(int), int arg, const std::string& how) {
        const auto before = pool.pids();
        try {
            (void)pool.run(task, arg);
            FAIL("the call should have thrown");
        } catch (const ndshm::error& e) {
            const std::string msg = e.what();
            CHECK_THAT(msg, Catch::Contains(how) && Catch::Contains("worker") && Catch::Contains("replaced"));
        }
        const auto after = pool.pids();
        REQUIRE(after.size() == 2);
        CHECK(after != before); // one worker is new
        // The pool works as before.
        CHECK(pool.gather(my_index) == std::vector<std::size_t>{0, 1});
    };
    SECTION("abort") { check_crash(die_abort, 0, "SIGABRT"); }
    SECTION("segmentation fault") { check_crash(die_segv, 0, "SIGSEGV"); }
    SECTION("exit() in a task") { check_crash(die_exit, 3, "exited with status 3"); }
}

TEST_CASE("a worker killed with kill -9 mid-task", "[pool][fault][multiprocess]")
{
    // Everything the task touches exists before the pool forks, so the worker inherits it.
    auto started_pid = shared_ndarray<std::int64_t>::create({1});
    test_util::event started, never;
    g_started_pid = &started_pid;
    g_started = &started;
    g_never = &never;
    fork_pool pool(1);
    const long original = pool.pids()[0];
    // A separate process kills the worker once it says it started; the call must not hang.
    const pid_t killer = test_util::fork_child([&] {
        if (started.wait() != 1) {
            return 1;
        }
        return ::kill(static_cast<pid_t>(started_pid(0)), SIGKILL) == 0 ? 0 : 2;
    });
    try {
        (void)pool.run(wait_to_be_killed, 0);
        FAIL("the call should have thrown");
    } catch (const ndshm::error& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("worker 0") && Catch::Contains("SIGKILL") &&
                                              Catch::Contains(std::to_string(original)) &&
                                              Catch::Contains("while running a task"));
    }
    CHECK(test_util::wait_child(killer).ok());
    CHECK(started_pid(0) == original);
    CHECK(pool.pids()[0] != original);
    CHECK(pool.run(add, 20, 22) == 42);
    g_started_pid = nullptr;
    g_started = g_never = nullptr;
}

TEST_CASE("pool(0) runs the same API serially, in-process", "[pool]")
{
    fork_pool pool(0);
    CHECK(pool.size() == 0);
    CHECK(pool.concurrency() == 1);
    CHECK(pool.pids().empty());
    CHECK(pool.run(worker_pid) == static_cast<long>(::getpid()));
    auto in = shared_ndarray<double>::create({100});
    for (std::size_t i = 0; i < 100; ++i) {
        in(i) = static_cast<double>(i);
    }
    auto out = shared_ndarray<double>::create({100});
    pool.map(square_plus, in, out, 1.0);
    for (std::size_t i = 0; i < 100; ++i) {
        REQUIRE(out(i) == static_cast<double>(i * i) + 1.0);
    }
    CHECK(pool.gather(my_index) == std::vector<std::size_t>{0});
    auto ints = shared_ndarray<int>::create({5});
    const auto r = pool.scatter(which_rows, ints);
    REQUIRE(r.size() == 1);
    CHECK(r[0] == std::make_tuple(std::size_t{0}, std::size_t{5}, std::size_t{0}));
    pool.broadcast(set_setting, 5);
    CHECK(g_setting == 5); // it ran here
    g_setting = 0;
    CHECK_THROWS_WITH(pool.run(throw_runtime, 0), Catch::Contains("on purpose") && Catch::Contains("in-process"));
    CHECK_THROWS_AS(pool.run(throw_not_found, 0), ndshm::not_found);
    auto made = pool.run(make_array, std::size_t{4}, std::int32_t{3});
    CHECK(made(3) == 3);
    CHECK_FALSE(ndshm::this_worker().in_worker);
}

TEST_CASE("destroying the pool stops and reaps every worker", "[pool][lifetime]")
{
    std::vector<long> pids;
    {
        fork_pool pool(3);
        pids = pool.pids();
        CHECK(pool.run(add, 1, 2) == 3);
    }
    for (const long pid : pids) {
        int status = 0;
        // Already reaped by the pool: no such child any more.
        CHECK(::waitpid(static_cast<pid_t>(pid), &status, WNOHANG) == -1);
        CHECK(errno == ECHILD);
    }
}

TEST_CASE("only the process that made a pool may use it", "[pool][errors]")
{
    fork_pool pool(1);
    const auto st = test_util::run_child([&] {
        try {
            (void)pool.run(add, 1, 1);
        } catch (const ndshm::error& e) {
            return std::string(e.what()).find("created it") != std::string::npos ? 0 : 2;
        }
        return 1;
    });
    CHECK(st.ok());
    CHECK(pool.run(add, 2, 2) == 4); // the child's copy of the pool touched nothing
}

TEST_CASE("a chunk's view writes only the chunk's rows, in C and Fortran order", "[pool]")
{
    for (auto ord : {ndshm::order::c, ndshm::order::fortran}) {
        auto a = ndshm::shared_ndarray<double>::create({6, 4}, ord);
        ndshm::chunk<double> c(a, 2, 4);
        auto v = c.view();
        CHECK(v.shape()[0] == 2);
        v = 1.0;  // a strided fill in Fortran order
        v += 2.0; // a strided compound assignment
        v *= xt::ones<double>({4}) * 2.0;
        xt::view(v, 1, xt::all()) += 1.0;
        for (std::size_t i = 0; i < 6; ++i) {
            for (std::size_t j = 0; j < 4; ++j) {
                const double want = i == 2 ? 6.0 : (i == 3 ? 7.0 : 0.0);
                CHECK(a(i, j) == want);
            }
        }
        CHECK(c(1, 3) == 7.0);
    }
}

TEST_CASE("a moved-from chunk is empty, as its array is", "[pool][lifetime]")
{
    auto a = ndshm::shared_ndarray<double>::create({6, 4});
    ndshm::chunk<double> c(a, 2, 5);
    auto moved = std::move(c);
    CHECK(moved.size() == 3);
    CHECK(moved.first() == 2);
    for (auto* h : {&c, &moved}) {
        if (h == &moved) {
            ndshm::chunk<double> other(a, 0, 1);
            other = std::move(moved); // move-assigned from: empty too
            CHECK(other.size() == 3);
        }
        CHECK(h->empty()); // NOLINT(bugprone-use-after-move): what this test is about
        CHECK(h->size() == 0);
        CHECK(h->first() == 0);
        CHECK(h->last() == 0);
        CHECK(h->shape().empty());
        CHECK(h->array().empty());
        CHECK(h->view().size() == 0);
    }
}

namespace {

void add_one(chunk<const double> in, chunk<double> out)
{
    for (std::size_t i = 0; i < in.size(); ++i) {
        out(i) = in(i) + 1.0;
    }
}

/// Mappings (mmap, munmap, madvise) and opens the calling worker has made since its counters were set.
std::tuple<long, long> worker_syscalls() { return {test_util::counted().map, test_util::counted().open}; }

/// Lines of /proc/PID/maps that name `text`.
int mappings_in(pid_t pid, const std::string& text)
{
    std::ifstream f("/proc/" + std::to_string(pid) + "/maps");
    std::string line;
    int n = 0;
    while (std::getline(f, line)) {
        n += line.find(text) != std::string::npos ? 1 : 0;
    }
    return n;
}

} // namespace

TEST_CASE("a worker attaches the arrays of its tasks once, not once per task", "[pool]")
{
    // The counting table goes into the workers with the fork.
    test_util::count_syscalls counting;
    fork_pool pool(1);
    auto in = shared_ndarray<double>::from_array(xt::arange<double>(4096));
    auto out = shared_ndarray<double>::create({4096});
    pool.map(add_one, in, out); // four tasks: the first attaches both arrays
    const auto before = pool.run(worker_syscalls);
    for (int i = 0; i < 10; ++i) {
        pool.map(add_one, in, out);
    }
    const auto after = pool.run(worker_syscalls);
    CHECK(std::get<0>(after) == std::get<0>(before)); // no mmap, munmap or madvise
    CHECK(std::get<1>(after) == std::get<1>(before)); // no shm_open
    CHECK(out(4095) == 4096.0);
    SECTION("an idle worker lets the arrays go")
    {
        const long worker = pool.run(worker_pid);
        const std::string name = in.name();
        CHECK(mappings_in(static_cast<pid_t>(worker), name) == 1);
        in.reset(); // unlinked here; the worker's mapping would keep its memory
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (mappings_in(static_cast<pid_t>(worker), name) != 0 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::yield(); // waits for the worker's state, bounded
        }
        CHECK(mappings_in(static_cast<pid_t>(worker), name) == 0);
    }
    SECTION("a segment removed and created again under the same name is attached anew")
    {
        const std::string name = in.name();
        in.reset();
        ndshm::options o;
        o.name = name;
        auto again = shared_ndarray<double>::from_array(xt::arange<double>(4096) * 2.0, o);
        pool.map(add_one, again, out);
        CHECK(out(4095) == 2.0 * 4095 + 1);
    }
}
