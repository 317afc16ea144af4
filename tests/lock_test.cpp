// ndshm::array_lock: ndshm's own lock in the segment's trailer. Multi-process cases fork and synchronise
// on pipe events (and on waitpid's reports of a stopped child) only: a holder killed, exiting or
// stopped (SIGSTOP), and lock bytes overwritten by a stray write.
#include <ndshm/lock.hpp>
#include <ndshm/segment.hpp>

#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <string>

using ndshm::shared_ndarray;

namespace {

// Unlinks a name at scope exit, whatever happened in between.
struct unlink_guard {
    std::string name;
    ~unlink_guard()
    {
        if (!name.empty()) {
            (void)::shm_unlink(("/" + name).c_str());
        }
    }
};

// Writes a .npy segment without ndshm's trailer, the way NumPy's open_memmap would.
void make_foreign(const std::string& name)
{
    const int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    const std::size_t size = 4096 + 8 * sizeof(double);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    REQUIRE(p != MAP_FAILED);
    REQUIRE(ndshm::detail::write_npy_header(static_cast<unsigned char*>(p), 4096, ndshm::dtype::float64, {8}, false));
    std::memcpy(p, ndshm::detail::npy_magic, sizeof ndshm::detail::npy_magic);
    ::munmap(p, size);
}

} // namespace

TEST_CASE("an array's lock is a C++ Lockable", "[lock]")
{
    auto a = shared_ndarray<int>::create({4});
    ndshm::array_lock lock(a);
    CHECK(lock.name() == a.name());
    {
        std::lock_guard<ndshm::array_lock> g(lock);
        CHECK(lock.owns_lock());
        CHECK_FALSE(lock.previous_owner_died());
        a(0) = 1;
    }
    CHECK_FALSE(lock.owns_lock());
    {
        std::unique_lock<ndshm::array_lock> u(lock, std::try_to_lock);
        CHECK(u.owns_lock());
        u.unlock();
        CHECK(u.try_lock_for(std::chrono::milliseconds(10)));
    }
    SECTION("locking twice from one thread is an error, not a deadlock")
    {
        std::lock_guard<ndshm::array_lock> g(lock);
        ndshm::array_lock again(a);
        CHECK_THROWS_WITH(again.lock(), Catch::Contains("already holds it"));
        CHECK_THROWS_WITH(again.try_lock(), Catch::Contains("already holds it"));
    }
    SECTION("unlocking a lock this thread does not hold is an error") { CHECK_THROWS_AS(lock.unlock(), ndshm::error); }
}

TEST_CASE("the lock excludes other processes until it is released", "[lock][multiprocess]")
{
    auto a = shared_ndarray<std::int64_t>::create({2});
    test_util::event child_tried, child_waiting;
    ndshm::array_lock lock(a);
    lock.lock();
    const pid_t pid = test_util::fork_child([&] {
        auto c = shared_ndarray<std::int64_t>::attach(a.name());
        ndshm::array_lock l(c);
        const bool got_it = l.try_lock(); // the parent holds it
        const bool timed = l.try_lock_for(std::chrono::milliseconds(1));
        child_tried.set(got_it || timed ? 'y' : 'n');
        child_waiting.set();
        l.lock(); // blocks until the parent unlocks
        // The parent wrote a(0) = 7 before it unlocked: the lock orders the two.
        const bool ok = c(0) == 7 && !l.previous_owner_died();
        c(1) = 1;
        l.unlock();
        return ok ? 0 : 1;
    });
    CHECK(child_tried.wait() == 'n');
    REQUIRE(child_waiting.wait() == 1);
    a(0) = 7;
    lock.unlock();
    CHECK(test_util::wait_child(pid).ok());
    std::lock_guard<ndshm::array_lock> g(lock);
    CHECK(a(1) == 1);
}

TEST_CASE("a lock whose holder was killed goes to the next locker, who is told", "[lock][multiprocess][fault]")
{
    auto a = shared_ndarray<double>::create({8});
    test_util::event holding, never;
    const pid_t pid = test_util::fork_child([&] {
        auto c = shared_ndarray<double>::attach(a.name());
        ndshm::array_lock l(c);
        l.lock();
        c(0) = 1.0; // half-done work the next holder must repair
        holding.set();
        never.wait(); // killed here, still holding the lock
        return 1;
    });
    REQUIRE(holding.wait() == 1);
    REQUIRE(::kill(pid, SIGKILL) == 0);
    const auto st = test_util::wait_child(pid);
    CHECK(st.signal == SIGKILL);

    ndshm::array_lock lock(a);
    lock.lock(); // acquired although the holder never unlocked
    CHECK(lock.previous_owner_died());
    CHECK(a(0) == 1.0);
    lock.unlock();
    // The lock is consistent again: the next acquisition is an ordinary one.
    lock.lock();
    CHECK_FALSE(lock.previous_owner_died());
    lock.unlock();
}

TEST_CASE("a holder that exits without unlocking hands the lock on too", "[lock][multiprocess][fault]")
{
    auto a = shared_ndarray<float>::create({3});
    const auto st = test_util::run_child([&]() -> int {
        auto c = shared_ndarray<float>::attach(a.name());
        ndshm::array_lock l(c);
        l.lock();
        ::_exit(0); // no destructor runs: the lock stays held by a process that no longer exists
    });
    CHECK(st.ok());
    ndshm::array_lock lock(a);
    CHECK(lock.try_lock()); // try_lock recovers a dead holder's lock as well
    CHECK(lock.previous_owner_died());
    lock.unlock();
}

TEST_CASE("a segment without an ndshm lock is refused with a clear error", "[lock][errors]")
{
    SECTION("an empty handle")
    {
        shared_ndarray<double> none;
        CHECK_THROWS_WITH(ndshm::array_lock(none), Catch::Contains("empty"));
    }
    SECTION("a foreign segment that NumPy would make")
    {
        unlink_guard g{"ndshm_test_foreign_lock_" + std::to_string(::getpid())};
        make_foreign(g.name);
        auto a = shared_ndarray<double>::attach(g.name);
        CHECK_THROWS_AS(ndshm::array_lock(a), ndshm::error);
        CHECK_THROWS_WITH(ndshm::array_lock(a), Catch::Contains("no ndshm trailer") && Catch::Contains(g.name));
    }
    SECTION("a read-only mapping")
    {
        auto a = shared_ndarray<double>::create({2});
        auto ro = shared_ndarray<const double>::attach(a.name());
        CHECK_THROWS_WITH(ndshm::array_lock(ro), Catch::Contains("read-only"));
        // A read-only view of a writable mapping may lock: the mapping itself is writable.
        const shared_ndarray<const double> view = a;
        ndshm::array_lock ok(view);
        CHECK(ok.try_lock());
        ok.unlock();
    }
}

TEST_CASE("every created segment carries an initialised lock", "[lock]")
{
    auto a = shared_ndarray<std::uint8_t>::create({1});
    const auto* t = ndshm::detail::array_access::mapping_of(a)->get_trailer();
    REQUIRE(t != nullptr);
    CHECK((t->flags & ndshm::detail::flag_lock) != 0);
    // An attacher sees the same initialised lock (no second initialisation race).
    auto b = shared_ndarray<std::uint8_t>::attach(a.name());
    ndshm::array_lock la(a), lb(b);
    la.lock();
    CHECK(test_util::run_child([&] {
              ndshm::array_lock l(b);
              return l.try_lock() ? 1 : 0;
          }).ok());
    la.unlock();
    CHECK(lb.try_lock());
    lb.unlock();
}

namespace {

// Shortens the lock's wait limits for one test, and restores them.
struct lock_limits_guard {
    ndshm::detail::lock_limits saved = ndshm::detail::lock_tuning();
    lock_limits_guard(std::chrono::milliseconds stopped, std::chrono::milliseconds unrecorded)
    {
        ndshm::detail::lock_tuning().stopped_holder = stopped;
        ndshm::detail::lock_tuning().unrecorded_holder = unrecorded;
    }
    ~lock_limits_guard() { ndshm::detail::lock_tuning() = saved; }
    lock_limits_guard(const lock_limits_guard&) = delete;
    lock_limits_guard& operator=(const lock_limits_guard&) = delete;
};

ndshm::detail::lock_area& lock_bytes(const shared_ndarray<double>& a)
{
    return *reinterpret_cast<ndshm::detail::lock_area*>(
        ndshm::detail::array_access::mapping_of(a)->get_trailer()->lock);
}

// The pid of a process that existed and is gone (reaped).
pid_t gone_pid()
{
    const pid_t pid = test_util::fork_child([] { return 0; });
    test_util::wait_child(pid);
    return pid;
}

enum class attempt { acquired, busy, format_error, other_error };

attempt try_once(ndshm::array_lock& l, std::chrono::milliseconds timeout)
{
    try {
        const bool got = timeout.count() == 0 ? l.try_lock() : l.try_lock_for(timeout);
        if (got) {
            l.unlock();
            return attempt::acquired;
        }
        return attempt::busy;
    } catch (const ndshm::format_error&) {
        return attempt::format_error;
    } catch (const ndshm::error&) {
        return attempt::other_error;
    }
}

} // namespace

TEST_CASE("timed and try locks return on time while the holder is stopped; lock() names it", "[lock][multiprocess]")
{
    auto a = shared_ndarray<double>::create({4});
    test_util::event holding, release;
    const pid_t pid = test_util::fork_child([&] {
        auto c = shared_ndarray<double>::attach(a.name());
        ndshm::array_lock l(c);
        l.lock();
        holding.set();
        release.wait();
        l.unlock();
        return 0;
    });
    REQUIRE(holding.wait() == 1);
    REQUIRE(test_util::stop_child(pid));

    ndshm::array_lock lock(a);
    bool got = true;
    double ms = test_util::elapsed_ms([&] { got = lock.try_lock(); });
    CHECK_FALSE(got);
    CHECK(ms < 500);
    ms = test_util::elapsed_ms([&] { got = lock.try_lock_for(std::chrono::milliseconds(100)); });
    CHECK_FALSE(got);
    CHECK(ms >= 100);
    CHECK(ms < 100 + 1000);
    {
        const lock_limits_guard limits(std::chrono::milliseconds(300), std::chrono::milliseconds(1000));
        std::string what;
        ms = test_util::elapsed_ms([&] {
            try {
                lock.lock();
            } catch (const ndshm::error& e) {
                what = e.what();
            }
        });
        CHECK_THAT(what, Catch::Contains("stopped") && Catch::Contains("process " + std::to_string(pid)) &&
                             Catch::Contains("kill -CONT"));
        CHECK(ms >= 300);
        CHECK(ms < 300 + 2000);
        CHECK_FALSE(lock.owns_lock());
    }
    REQUIRE(test_util::continue_child(pid));
    release.set();
    CHECK(test_util::wait_child(pid).ok());
    CHECK(lock.try_lock()); // released normally once it ran again
    CHECK_FALSE(lock.previous_owner_died());
    lock.unlock();
}

TEST_CASE("a stopped holder that is killed is taken over by the process waiting for it", "[lock][multiprocess]")
{
    auto a = shared_ndarray<double>::create({4});
    test_util::event holding, never;
    const pid_t pid = test_util::fork_child([&] {
        auto c = shared_ndarray<double>::attach(a.name());
        ndshm::array_lock l(c);
        l.lock();
        holding.set();
        never.wait();
        return 1;
    });
    REQUIRE(holding.wait() == 1);
    REQUIRE(test_util::stop_child(pid));
    ndshm::array_lock lock(a);
    CHECK_FALSE(lock.try_lock_for(std::chrono::milliseconds(20)));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    CHECK(test_util::wait_child(pid).signal == SIGKILL);
    CHECK(lock.try_lock_for(std::chrono::seconds(5)));
    CHECK(lock.previous_owner_died());
    lock.unlock();
}

TEST_CASE("lock bytes overwritten by a stray write are a format_error, never an abort or a hang", "[lock][errors]")
{
    auto a = shared_ndarray<double>::create({4});
    auto& raw = lock_bytes(a);
    ndshm::array_lock lock(a);
    const auto expect_corrupt = [&](const char* what) {
        INFO(what);
        CHECK_THROWS_AS(lock.try_lock(), ndshm::format_error);
        CHECK_THROWS_WITH(lock.try_lock_for(std::chrono::milliseconds(10)),
                          Catch::Contains("is corrupt") && Catch::Contains(a.name()));
        CHECK_THROWS_AS(lock.lock(), ndshm::format_error);
        CHECK_FALSE(lock.owns_lock());
        ndshm::detail::init_lock(&raw);
    };
    raw.tag = 0x12345678;
    expect_corrupt("a wrong format tag");
    raw.word = 0x40000005; // a bit outside the thread id and the waiters bit
    expect_corrupt("a word with an unknown bit");
    raw.word = 0x3fffff00; // beyond any thread id Linux hands out
    expect_corrupt("a word naming no possible thread");

    test_util::event started, stop;
    const pid_t live = test_util::fork_child([&] {
        started.set();
        stop.wait();
        return 0;
    });
    REQUIRE(started.wait() == 1);
    SECTION("a word that names a live process whose record is garbage")
    {
        raw.word = static_cast<std::uint32_t>(live);
        raw.owner_tid = static_cast<std::uint32_t>(live);
        raw.owner_pid = static_cast<std::uint32_t>(live);
        raw.owner_check = 42; // not the check value of the record
        expect_corrupt("a record that fails its check");
    }
    SECTION("a word that names a live process that never recorded itself")
    {
        raw.word = static_cast<std::uint32_t>(live);
        // It looks held: try and timed calls give up on time ...
        CHECK_FALSE(lock.try_lock());
        bool got = true;
        const double ms = test_util::elapsed_ms([&] { got = lock.try_lock_for(std::chrono::milliseconds(50)); });
        CHECK_FALSE(got);
        CHECK(ms < 50 + 1000);
        // ... and an untimed lock() reports it once the holder stays unrecorded past the limit.
        const lock_limits_guard limits(std::chrono::milliseconds(10000), std::chrono::milliseconds(200));
        CHECK_THROWS_WITH(lock.lock(),
                          Catch::Contains("never recorded itself") && Catch::Contains(std::to_string(live)));
        ndshm::detail::init_lock(&raw);
    }
    SECTION("a word that names a thread that is gone is taken over")
    {
        raw.word = static_cast<std::uint32_t>(gone_pid());
        CHECK(lock.try_lock());
        CHECK(lock.previous_owner_died());
        lock.unlock();
        CHECK(raw.takeovers == 1);
    }
    stop.set();
    CHECK(test_util::wait_child(live).ok());
    CHECK(lock.try_lock()); // usable again after init
    lock.unlock();
}

TEST_CASE("every single-bit flip of the lock bytes gives a result or an ndshm error, never a crash or a hang",
          "[lock][errors]")
{
    auto a = shared_ndarray<double>::create({4});
    test_util::event holding, release;
    // A live holder in another process, so that flips also hit a held lock's word and record.
    const pid_t holder = test_util::fork_child([&] {
        auto c = shared_ndarray<double>::attach(a.name());
        ndshm::array_lock l(c);
        l.lock();
        holding.set();
        release.wait();
        return 0; // exits holding it: the next user takes it over
    });
    REQUIRE(holding.wait() == 1);
    ndshm::detail::lock_area held{};
    std::memcpy(&held, &lock_bytes(a), sizeof held);
    release.set();
    CHECK(test_util::wait_child(holder).ok());
    ndshm::detail::lock_area free_lock{};
    ndshm::detail::init_lock(&free_lock);

    // In a child with a watchdog: a hang ends in SIGALRM, an abort in SIGABRT; both fail the test.
    const auto st = test_util::run_child([&] {
        ::alarm(120);
        auto c = shared_ndarray<double>::attach(a.name());
        auto& raw = lock_bytes(c);
        ndshm::array_lock l(c);
        int counts[4] = {0, 0, 0, 0};
        for (const auto* start : {&free_lock, &held}) {
            for (std::size_t bit = 0; bit < 8 * sizeof(ndshm::detail::lock_area); ++bit) {
                std::memcpy(&raw, start, sizeof raw);
                reinterpret_cast<unsigned char*>(&raw)[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
                ++counts[static_cast<int>(try_once(l, std::chrono::milliseconds(bit % 2 == 0 ? 0 : 2)))];
            }
        }
        std::printf("bit flips: %d acquired, %d busy, %d format_error, %d other error\n", counts[0], counts[1],
                    counts[2], counts[3]);
        // Flips of the tag are always caught; flips of a free lock's reserved bytes change nothing. (A
        // flip may also turn the word into this process's own id: "already holds it", an ndshm::error.)
        return counts[2] >= 32 && counts[0] > 0 ? 0 : 1;
    });
    CHECK(st.ok());
}
