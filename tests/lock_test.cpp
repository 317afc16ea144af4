// ndshm::array_lock: a robust process-shared mutex in the segment's trailer. Multi-process cases fork
// and synchronise on pipe events only.
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
