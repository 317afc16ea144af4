// Crash recovery with real processes killed by SIGKILL at chosen points: inside create (during the
// space reservation, and while the data is written), after publishing, and while holding attached
// arrays. Children signal the parent through pipe events when they reach the point, then block until
// they are killed; nothing waits on time.
#include <ndshm/all.hpp>

#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>

#include <signal.h>

#include <string>
#include <vector>

using ndshm::segment_kind;
using ndshm::shared_ndarray;
using tools_util::temp_dir;

namespace {

/// Set in a child before it creates: the point it reached, signalled to the parent.
test_util::event* g_reached = nullptr;

/// A posix_fallocate that tells the parent it was reached, then blocks until the process is killed.
int fallocate_then_block(int, off_t, off_t)
{
    g_reached->set();
    tools_util::block_forever();
}

/// NumPy's verdict on a file: exit 0 if np.load maps it, 3 if it refuses with an exception.
tools_util::program_result numpy_load(const std::string& path)
{
    return tools_util::run_python("import sys\n"
                                  "import numpy as np\n"
                                  "try:\n"
                                  "    np.load(sys.argv[1], mmap_mode='r')\n"
                                  "except Exception as e:\n"
                                  "    print(type(e).__name__, e)\n"
                                  "    sys.exit(3)\n",
                                  {path});
}

ndshm::options no_wait(ndshm::options o)
{
    o.ready_timeout = std::chrono::milliseconds(0);
    return o;
}

/// Where a crash test puts its segment: /dev/shm, or a private directory backend in which the test
/// may run gc without touching the segments of tests that run in parallel.
struct place {
    bool posix;
    temp_dir dir;
    ndshm::options opt;
    std::string name;
    std::string path;
    explicit place(bool in_dev_shm) : posix(in_dev_shm)
    {
        if (!posix) {
            opt = dir.opts();
        }
        name = tools_util::test_name("crash");
        path = (posix ? std::string("/dev/shm") : dir.path) + "/" + name;
    }
    bool exists() const { return tools_util::file_exists(path); }
    /// Removes the name as gc would: through gc itself in a private directory, else after checking
    /// that gc's rule selects it.
    void collect()
    {
        if (posix) {
            const auto s = ndshm::inspect(name, opt);
            REQUIRE_FALSE(ndshm::gc_reason(s).empty());
            ndshm::unlink(name, opt);
            return;
        }
        const auto dry = ndshm::gc(opt, true);
        REQUIRE(dry.size() == 1);
        CHECK(dry[0].segment.name == name);
        CHECK_FALSE(dry[0].removed);
        CHECK(exists());
        const auto done = ndshm::gc(opt);
        REQUIRE(done.size() == 1);
        CHECK(done[0].removed);
    }
};

} // namespace

TEST_CASE("a creator killed while reserving space leaves a segment that attach, NumPy and gc handle",
          "[crash][multiprocess]")
{
    for (const bool posix : {true, false}) {
        place p(posix);
        tools_util::shm_guard guard(posix ? p.name : std::string());
        test_util::event reached;
        ndshm::options o = p.opt;
        o.name = p.name;
        tools_util::child_guard child(test_util::fork_child([&] {
            g_reached = &reached;
            ndshm::detail::sys().posix_fallocate = fallocate_then_block;
            (void)shared_ndarray<double>::create({1000, 10}, o);
            return 1; // never reached
        }));
        REQUIRE(reached.wait() == 1);

        // The name exists, sized but empty, and the creator still holds it open: gc keeps it.
        auto s = ndshm::inspect(p.name, p.opt);
        CHECK(s.kind == segment_kind::unfinished);
        CHECK_FALSE(s.trailer);
        CHECK(s.users == std::vector<std::int64_t>{child.pid()});
        CHECK(ndshm::gc_reason(s).empty());
        if (!posix) {
            CHECK(ndshm::gc(p.opt).empty());
        }

        const auto st = child.kill9();
        CHECK(st.signal == SIGKILL);
        REQUIRE(p.exists());
        CHECK_THROWS_AS(shared_ndarray<double>::attach(p.name, no_wait(p.opt)), ndshm::format_error);
        CHECK_THROWS_WITH(shared_ndarray<double>::attach(p.name, no_wait(p.opt)), Catch::Contains("unfinished"));
        const auto np = numpy_load(p.path);
        CHECK(np.status.code == 3);
        s = ndshm::inspect(p.name, p.opt);
        CHECK(s.kind == segment_kind::unfinished);
        CHECK(s.users.empty());
        // gc removes it only after a walk over /proc that saw every process that could hold it; where
        // some process is closed to inspection, it keeps it and says why.
        CHECK((!ndshm::gc_reason(s).empty() || !ndshm::gc_doubt(s).empty()));
        // Where /proc shows only this test's processes, the walk is complete and gc collects it.
        const auto collected = tools_util::run_with_own_proc([&] {
            const auto again = ndshm::inspect(p.name, p.opt);
            if (!again.users_known || !again.users.empty()) {
                return 1;
            }
            if (ndshm::gc_reason(again).find("no process has it open or mapped") == std::string::npos) {
                return 2;
            }
            p.collect();
            return p.exists() ? 3 : 0;
        });
        CHECK(collected.exited);
        CHECK(collected.code == 0);
        CHECK_FALSE(p.exists());
    }
}

TEST_CASE("a creator killed while writing the data leaves a segment that attach, NumPy and gc handle",
          "[crash][multiprocess]")
{
    for (const bool posix : {true, false}) {
        place p(posix);
        tools_util::shm_guard guard(posix ? p.name : std::string());
        test_util::event reached;
        ndshm::options o = p.opt;
        o.name = p.name;
        tools_util::child_guard child(test_util::fork_child([&] {
            g_reached = &reached;
            // An expression that stops half-way through its evaluation into the new segment.
            auto blocking = xt::make_lambda_xfunction(
                [](double x) {
                    if (x == 500.0) {
                        g_reached->set();
                        tools_util::block_forever();
                    }
                    return 2 * x;
                },
                xt::arange<double>(1000));
            (void)shared_ndarray<double>::from_array(blocking, o);
            return 1; // never reached
        }));
        REQUIRE(reached.wait() == 1);

        auto s = ndshm::inspect(p.name, p.opt);
        CHECK(s.kind == segment_kind::unfinished);
        CHECK(s.has_header); // written, all but the first byte of the magic
        CHECK(s.shape == std::vector<std::size_t>{1000});
        REQUIRE(s.trailer);
        CHECK_FALSE(s.trailer->ready);
        CHECK(s.trailer->creator_pid == static_cast<std::uint64_t>(child.pid()));
        CHECK(s.creator == ndshm::creator_status::alive);
        CHECK(ndshm::gc_reason(s).empty());
        CHECK_THROWS_AS(shared_ndarray<double>::attach(p.name, no_wait(p.opt)), ndshm::format_error);

        CHECK(child.kill9().signal == SIGKILL);
        CHECK_THROWS_WITH(shared_ndarray<double>::attach(p.name, no_wait(p.opt)), Catch::Contains("unfinished"));
        ndshm::options brief = p.opt;
        brief.ready_timeout = std::chrono::milliseconds(20);
        CHECK_THROWS_AS(ndshm::attach_any(p.name, brief), ndshm::format_error);
        CHECK(numpy_load(p.path).status.code == 3);
        s = ndshm::inspect(p.name, p.opt);
        CHECK(s.creator == ndshm::creator_status::dead);
        CHECK_THAT(ndshm::gc_reason(s), Catch::Contains("unfinished, and its creator is dead"));
        p.collect();
        CHECK_FALSE(p.exists());
    }
}

TEST_CASE("readers keep working after the creator is killed, and gc removes the name unless persisted",
          "[crash][multiprocess]")
{
    temp_dir d;
    const ndshm::options opt = d.opts();
    ndshm::options oa = opt, ob = opt;
    oa.name = "ndshm_test_published";
    ob.name = "ndshm_test_persisted";
    test_util::event published;
    tools_util::child_guard child(test_util::fork_child([&]() -> int {
        auto a = shared_ndarray<double>::from_array(xt::arange<double>(100), oa);
        auto b = shared_ndarray<std::int32_t>::from_array(xt::arange<std::int32_t>(50), ob);
        b.persist();
        published.set();
        tools_util::block_forever();
    }));
    REQUIRE(published.wait() == 1);
    auto ra = shared_ndarray<double>::attach(oa.name, opt);
    auto rb = shared_ndarray<const std::int32_t>::attach(ob.name, opt);
    CHECK(ndshm::gc(opt, true).empty()); // the creator is alive

    CHECK(child.kill9().signal == SIGKILL);
    CHECK(xt::sum(ra.view())() == 4950.0);
    CHECK(xt::sum(rb.view())() == 1225);
    const auto removed = ndshm::gc(opt);
    REQUIRE(removed.size() == 1);
    CHECK(removed[0].segment.name == oa.name);
    CHECK(removed[0].removed);
    CHECK_THAT(removed[0].reason, Catch::Contains("creator is dead"));
    // The mapping outlives the name: the reader still reads and writes.
    ra(7) = -1.0;
    CHECK(ra(7) == -1.0);
    CHECK(xt::sum(ra.view())() == 4950.0 - 8.0);
    CHECK_THROWS_AS(shared_ndarray<double>::attach(oa.name, opt), ndshm::not_found);
    // The persisted one stays for whoever attaches next, until someone unlinks it.
    CHECK(shared_ndarray<std::int32_t>::attach(ob.name, opt)(49) == 49);
    CHECK(ndshm::gc(opt).empty());
    ndshm::unlink(ob.name, opt);
    CHECK(ndshm::list_segments(opt).empty());
}

TEST_CASE("a process killed while holding attached arrays leaks nothing", "[crash][multiprocess]")
{
    const int fds = test_util::open_fds();
    ndshm::options o;
    o.name = tools_util::test_name("holder");
    tools_util::shm_guard guard(o.name);
    {
        auto a = shared_ndarray<double>::from_array(xt::arange<double>(1000), o);
        test_util::event holding;
        tools_util::child_guard child(test_util::fork_child([&]() -> int {
            auto w = shared_ndarray<double>::attach(a.name());
            auto r = shared_ndarray<const double>::attach(a.name());
            auto any = ndshm::attach_any(a.name());
            w(0) = 42.0;
            holding.set();
            tools_util::block_forever();
        }));
        REQUIRE(holding.wait() == 1);
        auto users = ndshm::inspect(a.name()).users;
        std::sort(users.begin(), users.end());
        CHECK(std::count(users.begin(), users.end(), child.pid()) == 1);

        CHECK(child.kill9().signal == SIGKILL);
        // The holder's mappings went with it; the segment, its data and its owner are untouched.
        CHECK(ndshm::inspect(a.name()).users == std::vector<std::int64_t>{::getpid()});
        CHECK(test_util::shm_exists(a.name()));
        CHECK(a(0) == 42.0);
        CHECK(xt::sum(a.view())() == 499500.0 + 42.0);
        CHECK(shared_ndarray<double>::attach(a.name())(999) == 999.0);
        CHECK(ndshm::gc_reason(ndshm::inspect(a.name())).empty());
        CHECK(tools_util::mappings_of(a.name()) == 1);
    }
    // The owner's last handle removed the name and its mapping; no fd is left.
    CHECK_FALSE(test_util::shm_exists(o.name));
    CHECK(tools_util::mappings_of(o.name) == 0);
    CHECK(test_util::open_fds() == fds);
}

TEST_CASE("a producer killed while it holds a recycled array: gc removes the array, the pool forgets it",
          "[crash][multiprocess][queue]")
{
    temp_dir d;
    // One pooled segment: the pool must take it back from the dead producer to make another.
    auto q = ndshm::array_queue::create(2, 1, d.opts());
    std::string made;
    {
        auto a = q.make<double>({64});
        made = a.name();
        q.push(std::move(a));
        auto b = q.pop<double>();
    } // back to the queue: free
    test_util::event holding;
    tools_util::child_guard child(test_util::fork_child([&]() -> int {
        auto out = ndshm::array_queue::attach(q.name(), d.opts());
        auto a = out.make<double>({64}); // the free segment, now the child's
        a(0) = 1;
        holding.set(a.name() == made ? 1 : 2);
        tools_util::block_forever(); // killed between make and push
    }));
    REQUIRE(holding.wait() == 1);
    const auto victim = static_cast<std::uint64_t>(child.pid());
    CHECK(child.kill9().signal == SIGKILL);
    // The array's gc record names the dead producer; the queue's names this process, alive.
    const auto s = ndshm::inspect(made, d.opts());
    REQUIRE(s.trailer);
    CHECK(s.trailer->creator_pid == victim);
    CHECK_FALSE(ndshm::gc_reason(s).empty());
    CHECK(ndshm::gc_reason(ndshm::inspect(q.name(), d.opts())).empty());
    const auto removed = ndshm::gc(d.opts());
    REQUIRE(removed.size() == 1);
    CHECK(removed[0].segment.name == made);
    CHECK_FALSE(tools_util::file_exists(d / made));
    // The next make finds the record held by a dead process, forgets it and makes a new segment.
    auto c = q.make<double>({64});
    CHECK(c.name() != made);
    q.push(std::move(c));
    auto e = q.pop<double>();
    CHECK(e.size() == 64);
}

TEST_CASE("a consumer killed while it holds a recycled array: gc removes it, the queue goes on",
          "[crash][multiprocess][queue]")
{
    temp_dir d;
    auto q = ndshm::array_queue::create(2, 2, d.opts());
    auto a = q.make<std::int64_t>({32});
    const std::string made = a.name();
    a(31) = 7;
    q.push(std::move(a));
    test_util::event holding;
    tools_util::child_guard child(test_util::fork_child([&]() -> int {
        auto in = ndshm::array_queue::attach(q.name(), d.opts());
        auto b = in.pop<std::int64_t>();
        holding.set(b(31) == 7 ? 1 : 2);
        tools_util::block_forever(); // killed while it owns the popped array
    }));
    REQUIRE(holding.wait() == 1);
    const auto victim = static_cast<std::uint64_t>(child.pid());
    CHECK(child.kill9().signal == SIGKILL);
    CHECK(ndshm::inspect(made, d.opts()).trailer->creator_pid == victim);
    const auto removed = ndshm::gc(d.opts());
    REQUIRE(removed.size() == 1);
    CHECK(removed[0].segment.name == made);
    // Producer and consumer carry on; nothing is left once the queue goes.
    for (int i = 0; i < 10; ++i) {
        auto x = q.make<std::int64_t>({32});
        x(0) = i;
        q.push(std::move(x));
        CHECK(q.pop<std::int64_t>()(0) == i);
    }
    q.reset();
    CHECK(ndshm::list_segments(d.opts()).empty());
}
