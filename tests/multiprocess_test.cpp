// Processes that really fork or spawn, synchronised on pipe events, never on sleeps.
#include <ndshm/all.hpp>

#include "test_util.hpp"

#include <catch2/catch.hpp>
#include <xtensor/xmath.hpp>

#include <cstring>
#include <stdexcept>
#include <string>

using ndshm::shared_ndarray;

TEST_CASE("a forked child attaches and writes while the parent reads", "[multiprocess]")
{
    auto a = shared_ndarray<std::int64_t>::create({1000});
    const std::string name = a.name();
    test_util::event child_wrote, parent_read;
    const pid_t pid = test_util::fork_child([&] {
        auto c = shared_ndarray<std::int64_t>::attach(name);
        for (std::size_t i = 0; i < c.size(); ++i) {
            c(i) = static_cast<std::int64_t>(i) * 3;
        }
        child_wrote.set();
        parent_read.wait();
        // The parent's write is visible to the child as well.
        return c(0) == -1 ? 0 : 1;
    });
    REQUIRE(child_wrote.wait() == 1);
    CHECK(a(999) == 2997);
    CHECK(xt::sum(a.view())() == 3 * 999 * 1000 / 2);
    a(0) = -1;
    parent_read.set();
    const auto st = test_util::wait_child(pid);
    CHECK(st.ok());
}

TEST_CASE("a forked child never unlinks its parent's segments", "[multiprocess][lifetime]")
{
    auto a = shared_ndarray<double>::create({16});
    SECTION("child exits normally, after dropping its copies and calling free_session")
    {
        const auto st = test_util::run_child([&] {
            auto copy = a; // inherited handle, copied again
            copy(3) = 3.0;
            a.reset();
            copy.reset();
            return ndshm::free_session() == 0 ? 0 : 1;
        });
        CHECK(st.ok());
    }
    SECTION("child exits by exception, unwinding its handles")
    {
        const auto st = test_util::run_child([&]() -> int {
            auto copy = a;
            copy(3) = 3.0;
            a.reset();
            throw std::runtime_error("worker failed");
        });
        CHECK(st.code == 99);
    }
    SECTION("child exits through exit(), running static destructors")
    {
        std::fflush(nullptr);
        const pid_t pid = ::fork();
        if (pid == 0) {
            a(3) = 3.0;
            std::exit(0);
        }
        CHECK(test_util::wait_child(pid).ok());
    }
    CHECK(test_util::shm_exists(a.name()));
    CHECK(a(3) == 3.0);
    CHECK(shared_ndarray<double>::attach(a.name())(3) == 3.0);
}

TEST_CASE("an unrelated program attaches by name", "[multiprocess]")
{
    auto a = shared_ndarray<double>::create({500});
    for (std::size_t i = 0; i < a.size(); ++i) {
        a(i) = static_cast<double>(i);
    }
    const auto st = test_util::spawn_wait({NDSHM_TEST_PEER, "double-it", a.name()});
    REQUIRE(st.ok());
    CHECK(a(499) == 998.0);
    CHECK(test_util::spawn_wait({NDSHM_TEST_PEER, "expect", "not_found", "ndshm_test_absent_segment"}).ok());
}

TEST_CASE("another user cannot attach a 0600 segment", "[multiprocess][security]")
{
    auto a = shared_ndarray<double>::create({4});
    const auto st = test_util::run_child([&] {
        if (!test_util::become_nobody()) {
            return 10;
        }
        try {
            (void)shared_ndarray<double>::attach(a.name());
        } catch (const ndshm::permission_denied& e) {
            return std::string(e.what()).find(a.name()) != std::string::npos ? 0 : 11;
        }
        return 12;
    });
    CHECK(st.exited);
    CHECK(st.code == 0);
}

TEST_CASE("attach refuses a segment owned by another uid unless allowed", "[multiprocess][security]")
{
    // nobody creates a segment readable by all; root (which bypasses modes) must still refuse it.
    test_util::event created, done;
    struct shared_name {
        char text[64];
    };
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = test_util::fork_child([&] {
        ::close(fds[0]);
        if (!test_util::become_nobody()) {
            return 10;
        }
        ndshm::options o;
        o.mode = 0644;
        auto a = shared_ndarray<double>::create({4}, o);
        a(1) = 5.0;
        shared_name n{};
        std::strncpy(n.text, a.name().c_str(), sizeof n.text - 1);
        if (::write(fds[1], &n, sizeof n) != static_cast<ssize_t>(sizeof n)) {
            return 11;
        }
        created.set();
        done.wait(); // keep it until the parent has tried; the handle unlinks on return
        return 0;
    });
    ::close(fds[1]);
    shared_name n{};
    REQUIRE(created.wait() == 1);
    REQUIRE(::read(fds[0], &n, sizeof n) == static_cast<ssize_t>(sizeof n));
    ::close(fds[0]);
    const std::string name = n.text;
    CHECK_THROWS_AS(shared_ndarray<double>::attach(name), ndshm::permission_denied);
    CHECK_THROWS_WITH(shared_ndarray<double>::attach(name), Catch::Contains("belongs to uid"));
    ndshm::options allow;
    allow.allow_other_users = true;
    CHECK(shared_ndarray<double>::attach(name, allow)(1) == 5.0);
    done.set();
    CHECK(test_util::wait_child(pid).ok());
    CHECK_FALSE(test_util::shm_exists(name));
}
