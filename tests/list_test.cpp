// ndshm::shared_list: positions, append/extend/insert/assign/pop/erase/clear, copy-out and iteration,
// dtype mismatches, capacity, empty handles, lifetime, several processes appending, popping and reading
// one list at once, writers killed with SIGKILL in the middle of a change, and damaged tables. Processes
// synchronise on pipe events and on state in shared memory, never on sleeps.
#include <ndshm/dict.hpp>
#include <ndshm/inspect.hpp>
#include <ndshm/list.hpp>
#include <ndshm/segment.hpp>

#include "collection_util.hpp"
#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

using collection_util::is_stamp;
using collection_util::raw_table;
using collection_util::stamp;
using collection_util::temp_dir;
using ndshm::shared_list;
using ndshm::shared_ndarray;

namespace {

std::vector<std::int64_t> firsts(const shared_list& l)
{
    std::vector<std::int64_t> out;
    for (const auto& a : l.values<const std::int64_t>()) {
        out.push_back(a(0));
    }
    return out;
}

} // namespace

TEST_CASE("a list holds shared arrays in order", "[list]")
{
    auto l = shared_list::create(8);
    CHECK(l.name().rfind("ndshm_", 0) == 0);
    CHECK(l.name().size() <= 30);
    CHECK(l.capacity() == 8);
    CHECK(l.empty());
    struct stat st {};
    REQUIRE(::stat(("/dev/shm/" + l.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    l.append(stamp(1));
    l.append(stamp(2));
    l.insert(0, stamp(0));
    l.insert(3, stamp(3));
    CHECK(firsts(l) == std::vector<std::int64_t>{0, 1, 2, 3});
    l.assign(1, stamp(10));
    CHECK(firsts(l) == std::vector<std::int64_t>{0, 10, 2, 3});
    l.erase(2);
    CHECK(firsts(l) == std::vector<std::int64_t>{0, 10, 3});
    auto last = l.pop<std::int64_t>();
    CHECK(last(0) == 3);
    auto first = l.pop<std::int64_t>(0);
    CHECK(first(0) == 0);
    CHECK(l.size() == 1);
    CHECK(l.at<std::int64_t>(0)(0) == 10);
    CHECK(l[0].dtype() == ndshm::dtype::int64);

    l.extend(std::vector<xt::xarray<double>>{{1.5}, {2.5, 2.5}});
    l.append(xt::xarray<float>{{1, 2}, {3, 4}});
    auto f = shared_ndarray<std::uint16_t>::create({3}, ndshm::order::fortran);
    f(2) = 9;
    l.append(f);
    CHECK(l.size() == 5);
    std::vector<ndshm::dtype> types;
    for (const auto& a : l) {
        types.push_back(a.dtype());
    }
    CHECK(types == std::vector<ndshm::dtype>{ndshm::dtype::int64, ndshm::dtype::float64, ndshm::dtype::float64,
                                             ndshm::dtype::float32, ndshm::dtype::uint16});
    CHECK(l.at<std::uint16_t>(4)(2) == 9);
    CHECK(l.at<const std::uint16_t>(4).name() != f.name()); // a copy
    auto mine = shared_ndarray<double>::from_array(xt::xarray<double>{7, 7});
    const std::string mine_name = mine.name();
    l.adopt(std::move(mine));
    CHECK(mine.empty());
    CHECK(l.at<double>(5).name() == mine_name);

    l.erase(0);
    l.erase(2);
    l.erase(2);
    l.erase(2);
    const std::vector<xt::xarray<double>> c = l.copy<double>();
    CHECK(c.size() == 2);
    CHECK((c[1] == xt::xarray<double>{2.5, 2.5}));
    l.clear();
    CHECK(l.empty());
    CHECK(l.begin() == l.end());
}

TEST_CASE("positions out of range, dtype mismatches and a full list are clear errors", "[list][errors]")
{
    auto l = shared_list::create(3);
    l.append(xt::xarray<float>{1});
    CHECK_THROWS_AS(l.at<float>(1), std::out_of_range);
    CHECK_THROWS_WITH(l.at(5), Catch::Contains("position 5 is out of range for a list of 1 entries"));
    CHECK_THROWS_AS(l.insert(2, xt::xarray<float>{1}), std::out_of_range);
    CHECK_THROWS_AS(l.assign(1, xt::xarray<float>{1}), std::out_of_range);
    CHECK_THROWS_AS(l.erase(1), std::out_of_range);
    CHECK_THROWS_AS(l.pop<float>(1), std::out_of_range);
    CHECK_THROWS_WITH(l.at<double>(0), Catch::Contains("entry at position 0 holds float32 ('<f4'), not float64"));
    CHECK_THROWS_AS(l.pop<double>(), ndshm::dtype_mismatch);
    CHECK(l.size() == 1); // a failed pop keeps the entry
    l.append(xt::xarray<float>{2});
    l.append(xt::xarray<float>{3});
    CHECK_THROWS_AS(l.append(xt::xarray<float>{4}), ndshm::out_of_space);
    CHECK_THROWS_WITH(l.insert(0, xt::xarray<float>{4}), Catch::Contains("capacity is 3"));
    l.assign(2, xt::xarray<float>{30}); // replacing needs no more room
    CHECK(l.at<float>(2)(0) == 30);
    // An extend that does not fit appends nothing.
    (void)l.pop<float>();
    CHECK_THROWS_AS(l.extend(std::vector<xt::xarray<float>>{{5}, {6}}), ndshm::out_of_space);
    CHECK(l.size() == 2);
    l.pop<float>();
    l.pop<float>();
    CHECK_THROWS_AS(l.pop<float>(), std::out_of_range);

    shared_list moved = std::move(l);
    CHECK_FALSE(l);
    CHECK(l.name().empty());
    CHECK(l.size() == 0);
    CHECK_THROWS_WITH(l.append(xt::xarray<float>{1}), Catch::Contains("handle is empty"));
    CHECK(moved);
    moved.reset();
    CHECK_FALSE(moved);
    CHECK_THROWS_AS(shared_list().values(), ndshm::error);
    CHECK_THROWS_AS(shared_list::create(0), ndshm::error);
    auto d = ndshm::shared_dict::create(2);
    CHECK_THROWS_WITH(shared_list::attach(d.name()), Catch::Contains("not a list"));
}

TEST_CASE("the list's owner removes it with its entries; forked children never do", "[list][lifetime]")
{
    temp_dir dir;
    {
        auto l = shared_list::create(8, dir.opts());
        const std::string name = l.name();
        l.append(stamp(1));
        const auto st = test_util::run_child([&] {
            auto c = shared_list::attach(l.name(), dir.opts());
            c.append(stamp(2));
            l.reset(); // the owner's handle, inherited: its last copy in the child removes nothing
            return 0;
        });
        CHECK(st.ok());
        CHECK(firsts(l) == std::vector<std::int64_t>{1, 2});
        CHECK(dir.files().size() == 3);
        l.persist();
        l.reset();
        CHECK(dir.files().size() == 3);
        // The persisted list is removed by whoever calls remove().
        auto again = shared_list::attach(name, dir.opts());
        CHECK(again.size() == 2);
        again.remove();
    }
    CHECK(dir.files().empty());
}

TEST_CASE("several processes append, pop and read one list at once", "[list][multiprocess]")
{
    temp_dir dir;
    auto l = shared_list::create(256, dir.opts());
    constexpr int producers = 3, per_producer = 60;
    test_util::event start, popped_all;
    std::vector<pid_t> pids;
    for (int p = 0; p < producers; ++p) {
        pids.push_back(test_util::fork_child([&, p] {
            auto c = shared_list::attach(l.name(), dir.opts());
            start.wait();
            for (int i = 0; i < per_producer; ++i) {
                if (i % 10 == 9) {
                    // Two at once: every reader sees both or neither.
                    c.extend(std::vector<xt::xarray<std::int64_t>>{stamp(p * 1000 + i), stamp(p * 1000 + i)});
                } else {
                    c.append(stamp(p * 1000 + i));
                }
            }
            return 0;
        }));
    }
    // A consumer pops what it can while the producers run, and reports each value through a pipe.
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t consumer = test_util::fork_child([&] {
        ::close(fds[0]);
        auto c = shared_list::attach(l.name(), dir.opts());
        start.wait();
        int taken = 0, bad = 0;
        while (taken < 40) {
            if (c.empty()) {
                continue;
            }
            try {
                auto a = c.pop<std::int64_t>(0);
                bad += is_stamp(a.data(), a.size()) ? 0 : 1;
                const std::int64_t v = a(0);
                (void)!::write(fds[1], &v, sizeof v);
                ++taken;
            } catch (const std::out_of_range&) {
                // emptied by nobody else, but positions may move: try again
            }
        }
        ::close(fds[1]);
        return bad == 0 ? 0 : 1;
    });
    ::close(fds[1]);
    const pid_t reader = test_util::fork_child([&] {
        auto c = shared_list::attach(l.name(), dir.opts());
        start.wait();
        int bad = 0;
        for (int k = 0; k < 100; ++k) {
            for (const auto& a : c.values<const std::int64_t>()) {
                bad += is_stamp(a.data(), a.size()) ? 0 : 1;
            }
        }
        return bad == 0 ? 0 : 1;
    });
    for (int k = 0; k < producers + 2; ++k) {
        start.set();
    }
    for (const pid_t pid : pids) {
        CHECK(test_util::wait_child(pid).ok());
    }
    CHECK(test_util::wait_child(consumer).ok());
    CHECK(test_util::wait_child(reader).ok());
    std::multiset<std::int64_t> got;
    std::int64_t v = 0;
    while (::read(fds[0], &v, sizeof v) == static_cast<ssize_t>(sizeof v)) {
        got.insert(v);
    }
    ::close(fds[0]);
    CHECK(got.size() == 40);
    for (const auto& a : l.values<const std::int64_t>()) {
        got.insert(a(0));
    }
    // Every value appended arrived exactly once (the extended ones twice), in each producer's order.
    std::multiset<std::int64_t> want;
    for (int p = 0; p < producers; ++p) {
        for (int i = 0; i < per_producer; ++i) {
            want.insert(p * 1000 + i);
            if (i % 10 == 9) {
                want.insert(p * 1000 + i);
            }
        }
    }
    CHECK(got == want);
    std::vector<std::int64_t> last(producers, -1);
    for (const std::int64_t x : firsts(l)) {
        const auto p = static_cast<std::size_t>(x / 1000);
        CHECK(x >= last[p]);
        last[p] = x;
    }
    CHECK(dir.files().size() == l.size() + 1);
    CHECK(ndshm::segment_problems(ndshm::inspect(l.name(), dir.opts())).empty());
}

TEST_CASE("a list writer killed in the middle of a change leaves a consistent list", "[list][multiprocess][fault]")
{
    temp_dir dir;
    auto l = shared_list::create(8, dir.opts());
    l.append(stamp(1));
    l.append(stamp(2));
    raw_table raw(dir.path_of(l.name()));
    SECTION("killed after committing an assign")
    {
        const auto st = test_util::run_child([&] {
            auto c = shared_list::attach(l.name(), dir.opts());
            collection_util::die_at_next_unlink();
            c.assign(0, stamp(7));
            return 0;
        });
        CHECK(st.signal == SIGKILL);
        CHECK(raw.control().dirty == 1);
        CHECK(dir.files().size() == 4);
        CHECK(firsts(l) == std::vector<std::int64_t>{7, 2});
        CHECK(raw.recoveries() == 1);
        CHECK(dir.files().size() == 3);
    }
    SECTION("killed after committing a clear")
    {
        const auto st = test_util::run_child([&] {
            auto c = shared_list::attach(l.name(), dir.opts());
            collection_util::die_at_next_unlink();
            c.clear();
            return 0;
        });
        CHECK(st.signal == SIGKILL);
        CHECK(l.values().empty());
        CHECK(dir.files().size() == 1);
    }
    SECTION("killed at random points")
    {
        for (int round = 0; round < 16; ++round) {
            test_util::event progress;
            const pid_t pid = test_util::fork_child([&] {
                auto c = shared_list::attach(l.name(), dir.opts());
                // The list never holds more than 7 entries (extend to at most 6, insert one more), so
                // wherever the kill lands the parent's append below still fits the capacity of 8.
                for (int i = 0;; ++i) {
                    if (c.size() < 5) {
                        c.extend(std::vector<xt::xarray<std::int64_t>>{stamp(i), stamp(i)});
                    }
                    c.insert(0, stamp(round));
                    (void)c.pop<std::int64_t>();
                    c.erase(0);
                    progress.set();
                }
                return 0;
            });
            for (int k = 0; k < 1 + round % 5; ++k) {
                REQUIRE(progress.wait() == 1);
            }
            REQUIRE(::kill(pid, SIGKILL) == 0);
            CHECK(test_util::wait_child(pid).signal == SIGKILL);
            l.append(stamp(100 + round));
            for (const auto& a : l.values<const std::int64_t>()) {
                CHECK(is_stamp(a.data(), a.size()));
            }
            l.clear();
            CHECK(ndshm::segment_problems(ndshm::inspect(l.name(), dir.opts())).empty());
            // What the dead writer made or popped and never handed on names it: gc removes it.
            collection_util::gc_after_kill(dir);
            CHECK(dir.files().size() == 1);
            l.append(stamp(1));
            l.append(stamp(2));
        }
    }
    l.append(stamp(3));
    CHECK(l.at<std::int64_t>(l.size() - 1)(0) == 3);
    CHECK(ndshm::segment_problems(ndshm::inspect(l.name(), dir.opts())).empty());
}

TEST_CASE("a damaged list table is a format_error, never a crash", "[list][errors][fault]")
{
    temp_dir dir;
    auto l = shared_list::create(4, dir.opts());
    l.append(stamp(1));
    l.append(stamp(2));
    raw_table raw(dir.path_of(l.name()));
    const auto corrupt = [&](auto&& call) {
        try {
            call();
            FAIL("no exception");
        } catch (const ndshm::format_error& e) {
            CHECK(e.code() == ndshm::errc::corrupt_control);
        }
    };
    SECTION("the capacity")
    {
        raw.control().capacity = 1u << 30;
        corrupt([&] { (void)l.at(0); });
        CHECK_THROWS_AS(shared_list::attach(l.name(), dir.opts()), ndshm::format_error);
    }
    SECTION("the order")
    {
        raw.order()[0] = 4000;
        corrupt([&] { (void)l.at(0); });
        corrupt([&] { l.append(stamp(3)); });
    }
    SECTION("two positions name one record")
    {
        raw.order()[1] = raw.order()[0];
        raw.control().dirty = 1; // the repair sees it
        corrupt([&] { (void)l.values(); });
    }
    SECTION("a record's identity")
    {
        raw.record(raw.order()[1]).ino = 0;
        corrupt([&] { (void)l.at(1); });
    }
    CHECK_FALSE(ndshm::segment_problems(ndshm::inspect(l.name(), dir.opts())).empty());
}

TEST_CASE("a list is created exclusively, and its entries get its mode", "[list][security]")
{
    temp_dir dir;
    ndshm::options o = dir.opts();
    o.mode = 0640;
    auto l = shared_list::create(4, o);
    l.append(stamp(1));
    struct stat st {};
    REQUIRE(::stat(dir.path_of(l.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
    REQUIRE(::stat(dir.path_of(l.at<std::int64_t>(0).name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
    // A name that exists is never taken over, whatever it holds.
    ndshm::options same = dir.opts();
    same.name = l.name();
    CHECK_THROWS_AS(shared_list::create(4, same), ndshm::already_exists);
    CHECK_THROWS_AS(ndshm::shared_dict::create(4, same), ndshm::already_exists);
    same.name = l.at<std::int64_t>(0).name();
    CHECK_THROWS_AS(shared_list::create(4, same), ndshm::already_exists);
    CHECK(l.size() == 1);
    CHECK(l.at<std::int64_t>(0)(0) == 1);
}

TEST_CASE("the ndshm tool lists a list, checks it, and gc removes it once its creator is dead", "[list][gc][inspect]")
{
    temp_dir dir;
    test_util::event made, never;
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = test_util::fork_child([&] {
        ::close(fds[0]);
        auto l = shared_list::create(8, dir.opts());
        l.append(stamp(1));
        l.extend(std::vector<xt::xarray<std::int64_t>>{stamp(2), stamp(3)});
        char name[64] = {};
        std::memcpy(name, l.name().data(), std::min<std::size_t>(l.name().size(), sizeof name - 1));
        (void)!::write(fds[1], name, sizeof name);
        made.set();
        never.wait(); // killed while it owns the list
        return 0;
    });
    ::close(fds[1]);
    REQUIRE(made.wait() == 1);
    char buf[64] = {};
    REQUIRE(::read(fds[0], buf, sizeof buf) == static_cast<ssize_t>(sizeof buf));
    ::close(fds[0]);
    const std::string name = buf;
    {
        // Alive: the list is listed with its entries, its table checks out, and gc keeps it.
        auto s = ndshm::inspect(name, dir.opts());
        CHECK(s.kind == ndshm::segment_kind::list);
        CHECK(std::string(ndshm::kind_name(s.kind)) == "list");
        CHECK(s.contents.text == "3 of 8 entries");
        CHECK(ndshm::segment_problems(s).empty());
        CHECK(ndshm::gc(dir.opts()).empty());
        auto seen = shared_list::attach(name, dir.opts());
        CHECK(firsts(seen) == std::vector<std::int64_t>{1, 2, 3});
    }
#ifdef NDSHM_TEST_TOOL
    const auto ls = tools_util::run_program({NDSHM_TEST_TOOL, "--dir", dir.path(), "ls"});
    CHECK(ls.status.ok());
    CHECK(ls.out.find(name) != std::string::npos);
    CHECK(ls.out.find("list") != std::string::npos);
    CHECK(ls.out.find("3 of 8 entries") != std::string::npos);
    const auto json = tools_util::run_program({NDSHM_TEST_TOOL, "--dir", dir.path(), "ls", "--json"});
    CHECK(json.status.ok());
    CHECK(json.out.find("\"kind\": \"list\"") != std::string::npos);
    CHECK(json.out.find("\"summary\": \"3 of 8 entries\"") != std::string::npos);
    const auto info = tools_util::run_program({NDSHM_TEST_TOOL, "--dir", dir.path(), "info", name});
    CHECK(info.status.code == 0);
    CHECK(info.out.find("3 of 8 entries") != std::string::npos);
#endif
    REQUIRE(::kill(pid, SIGKILL) == 0);
    CHECK(test_util::wait_child(pid).signal == SIGKILL);
    CHECK(dir.files().size() == 4);
    for (const auto& s : ndshm::list_segments(dir.opts())) {
        CHECK(ndshm::gc_reason(s).find("creator is dead") != std::string::npos);
    }
#ifdef NDSHM_TEST_TOOL
    const auto dry = tools_util::run_program({NDSHM_TEST_TOOL, "--dir", dir.path(), "gc", "--dry-run"});
    CHECK(dry.status.ok());
    CHECK(dry.out.find("would remove " + name) != std::string::npos);
    CHECK(dir.files().size() == 4);
    const auto gc = tools_util::run_program({NDSHM_TEST_TOOL, "--dir", dir.path(), "gc"});
    CHECK(gc.status.ok());
    CHECK(gc.out.find("removed " + name) != std::string::npos);
#else
    CHECK(ndshm::gc(dir.opts()).size() == 4);
#endif
    CHECK(dir.files().empty());
}
