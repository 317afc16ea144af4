// ndshm::array_queue: ordering and ownership across processes, bounded capacity, timeouts, close, many
// producers and consumers, and processes killed while they hold or wait on the queue. Processes
// synchronise on pipe events (or on the queue's own counters in shared memory), never on sleeps.
#include <ndshm/any_ndarray.hpp>
#include <ndshm/inspect.hpp>
#include <ndshm/queue.hpp>
#include <ndshm/segment.hpp>

#include "lock_corruption.hpp"
#include "sys_counter.hpp"
#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

using ndshm::array_queue;
using ndshm::shared_ndarray;

namespace {

shared_ndarray<double> filled(std::size_t n, double value)
{
    auto a = shared_ndarray<double>::create({n});
    for (auto& x : a) {
        x = value;
    }
    return a;
}

// The process recorded as a segment's owner in its trailer (what `ndshm gc` checks).
template <class T>
std::uint64_t owner_pid(const shared_ndarray<T>& a)
{
    return ndshm::detail::array_access::mapping_of(a)->get_trailer()->creator_pid;
}

// The queue's control block, mapped straight from /dev/shm, to watch its waiter counters.
class raw_queue {
public:
    explicit raw_queue(const std::string& name)
    {
        const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
        REQUIRE(fd >= 0);
        m_base = static_cast<unsigned char*>(::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        ::close(fd);
        REQUIRE(m_base != MAP_FAILED);
    }
    ~raw_queue() { ::munmap(m_base, 8192); }
    raw_queue(const raw_queue&) = delete;
    raw_queue& operator=(const raw_queue&) = delete;
    ndshm::detail::queue_control& control() { return *reinterpret_cast<ndshm::detail::queue_control*>(m_base + 4096); }
    std::uint32_t pop_waiters() { return __atomic_load_n(&control().pop_waiters, __ATOMIC_ACQUIRE); }
    std::uint32_t push_waiters() { return __atomic_load_n(&control().push_waiters, __ATOMIC_ACQUIRE); }
    ndshm::detail::lock_area& lock() { return control().lock; }

private:
    unsigned char* m_base;
};

// Spins (yielding) until `ready()`; the condition is set by another process in shared memory, so this
// waits on state, not on time.
template <class F>
void spin_until(F ready)
{
    while (!ready()) {
        std::this_thread::yield();
    }
}

} // namespace

TEST_CASE("a queue hands arrays over in order and moves ownership", "[queue]")
{
    auto q = array_queue::create(4);
    CHECK(q.name().rfind("ndshm_", 0) == 0);
    CHECK(q.name().size() <= 30);
    CHECK(q.capacity() == 4);
    struct stat st {};
    REQUIRE(::stat(("/dev/shm/" + q.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    std::vector<std::string> names;
    for (int i = 0; i < 3; ++i) {
        auto a = filled(10, i);
        names.push_back(a.name());
        auto copy = a; // another handle of the sender: it stops owning too
        q.push(std::move(a));
        CHECK(a.empty());
        copy.reset(); // the sender's last handle: must not unlink a queued array
        CHECK(test_util::shm_exists(names.back()));
    }
    CHECK(q.size() == 3);
    CHECK(q.front_dtype() == ndshm::dtype::float64);
    for (int i = 0; i < 3; ++i) {
        auto b = q.pop<double>();
        REQUIRE_FALSE(b.empty());
        CHECK(b.name() == names[static_cast<std::size_t>(i)]);
        CHECK(b(9) == i);
        CHECK(owner_pid(b) == static_cast<std::uint64_t>(::getpid()));
    } // each popped array is owned here: its handle going unlinks it
    for (const auto& n : names) {
        CHECK_FALSE(test_util::shm_exists(n));
    }
    CHECK(q.size() == 0);
    CHECK(q.try_pop<double>().empty());
    CHECK_FALSE(q.front_dtype().has_value());
}

TEST_CASE("arrays cross processes in order, and the receiver owns them", "[queue][multiprocess]")
{
    auto q = array_queue::create(16);
    SECTION("a child pushes, exits, and the parent pops what it sent")
    {
        const auto st = test_util::run_child([&] {
            auto cq = array_queue::attach(q.name());
            for (int i = 0; i < 10; ++i) {
                auto a = shared_ndarray<std::int32_t>::create({100});
                a(0) = i;
                a(99) = 1000 + i;
                cq.push(std::move(a));
            }
            return 0; // the child's handles go: nothing it pushed may be unlinked
        });
        REQUIRE(st.ok());
        CHECK(q.size() == 10);
        for (int i = 0; i < 10; ++i) {
            auto a = q.pop<std::int32_t>();
            REQUIRE_FALSE(a.empty());
            CHECK(a(0) == i);
            CHECK(a(99) == 1000 + i);
            CHECK(owner_pid(a) == static_cast<std::uint64_t>(::getpid()));
        }
    }
    SECTION("the parent pushes; a child pops, owns, and unlinks on its way out")
    {
        auto a = filled(1000, 2.5);
        const std::string name = a.name();
        q.push(std::move(a));
        test_util::event popped, checked;
        const pid_t pid = test_util::fork_child([&] {
            auto b = array_queue::attach(q.name()).pop<double>();
            const bool ok = !b.empty() && b(999) == 2.5 && owner_pid(b) == static_cast<std::uint64_t>(::getpid());
            popped.set();
            checked.wait();
            return ok ? 0 : 1; // b goes with the child's exit: it was the owner, so the name goes too
        });
        REQUIRE(popped.wait() == 1);
        CHECK(test_util::shm_exists(name));
        checked.set();
        CHECK(test_util::wait_child(pid).ok());
        CHECK_FALSE(test_util::shm_exists(name));
    }
}

TEST_CASE("a consumer that dies after popping leaves its array to gc", "[queue][multiprocess][fault]")
{
    auto q = array_queue::create(2);
    auto a = filled(8, 1.0);
    const std::string name = a.name();
    q.push(std::move(a));
    test_util::event popped, never;
    const pid_t pid = test_util::fork_child([&] {
        auto b = q.pop<double>();
        popped.set();
        never.wait(); // killed while it owns the array
        return 0;
    });
    REQUIRE(popped.wait() == 1);
    REQUIRE(::kill(pid, SIGKILL) == 0);
    CHECK(test_util::wait_child(pid).signal == SIGKILL);
    // The trailer names the dead consumer as the owner: `ndshm gc` reclaims it. Here, clean up by hand.
    auto left = shared_ndarray<double>::attach(name);
    CHECK(owner_pid(left) == static_cast<std::uint64_t>(pid));
    ndshm::unlink(name);
}

TEST_CASE("a queue opened with options::populate hands over prefaulted arrays", "[queue]")
{
    auto q = array_queue::create(1);
    ndshm::options o;
    o.populate = true;
    auto consumer = array_queue::attach(q.name(), o);
    q.push(filled(100000, 4.0));
    auto b = consumer.pop<double>();
    REQUIRE(b.size() == 100000);
    double s = 0;
    for (const double x : b) {
        s += x;
    }
    CHECK(s == 400000.0);
}

TEST_CASE("a pop blocks until something is pushed", "[queue][multiprocess]")
{
    auto q = array_queue::create(1);
    raw_queue raw(q.name());
    const pid_t pid = test_util::fork_child([&] {
        auto b = q.pop<float>(); // blocks: the queue is empty
        return !b.empty() && b(0) == 3.0f ? 0 : 1;
    });
    spin_until([&] { return raw.pop_waiters() == 1; }); // the child sleeps in pop
    auto a = shared_ndarray<float>::create({1});
    a(0) = 3.0f;
    q.push(std::move(a));
    CHECK(test_util::wait_child(pid).ok());
}

TEST_CASE("capacity bounds the queue, and try_ and timed calls give up without losing the array", "[queue]")
{
    auto q = array_queue::create(2);
    q.push(filled(4, 0));
    CHECK(q.try_push(filled(4, 1)));
    auto third = filled(4, 2);
    const std::string name = third.name();
    CHECK_FALSE(q.try_push(std::move(third)));
    CHECK_FALSE(q.push(std::move(third), std::chrono::milliseconds(5)));
    REQUIRE_FALSE(third.empty()); // still the caller's, still owned
    CHECK(q.size() == 2);
    CHECK(q.pop<double>()(0) == 0);
    CHECK(q.push(std::move(third), std::chrono::seconds(10)));
    CHECK(q.pop<double>()(0) == 1);
    auto last = q.pop<double>(std::chrono::seconds(10));
    CHECK(last(0) == 2);
    CHECK(last.name() == name);
    CHECK(q.pop<double>(std::chrono::milliseconds(1)).empty());
}

TEST_CASE("a blocked push waits for room", "[queue][multiprocess]")
{
    auto q = array_queue::create(1);
    raw_queue raw(q.name());
    q.push(filled(2, 10));
    const pid_t pid = test_util::fork_child([&] {
        q.push(filled(2, 20)); // blocks: the queue is full
        return 0;
    });
    spin_until([&] { return raw.push_waiters() == 1; });
    CHECK(q.pop<double>()(0) == 10);
    CHECK(test_util::wait_child(pid).ok());
    CHECK(q.pop<double>()(0) == 20);
}

TEST_CASE("close wakes every blocked pop and push", "[queue][multiprocess]")
{
    SECTION("consumers waiting on an empty queue get an empty handle")
    {
        auto q = array_queue::create(4);
        raw_queue raw(q.name());
        std::vector<pid_t> pids;
        for (int i = 0; i < 3; ++i) {
            pids.push_back(test_util::fork_child([&] { return q.pop<double>().empty() && q.closed() ? 0 : 1; }));
        }
        spin_until([&] { return raw.pop_waiters() == 3; });
        q.close();
        for (const pid_t p : pids) {
            CHECK(test_util::wait_child(p).ok());
        }
    }
    SECTION("producers waiting on a full queue throw, keeping their arrays")
    {
        auto q = array_queue::create(1);
        raw_queue raw(q.name());
        q.push(filled(1, 0));
        std::vector<pid_t> pids;
        for (int i = 0; i < 2; ++i) {
            pids.push_back(test_util::fork_child([&] {
                auto a = filled(1, 1);
                try {
                    q.push(std::move(a));
                } catch (const ndshm::error& e) {
                    return std::string(e.what()).find("closed") != std::string::npos && !a.empty() ? 0 : 2;
                }
                return 1;
            }));
        }
        spin_until([&] { return raw.push_waiters() == 2; });
        q.close();
        for (const pid_t p : pids) {
            CHECK(test_util::wait_child(p).ok());
        }
        // What was queued before the close can still be popped; then the queue reports the end.
        CHECK(q.pop<double>()(0) == 0);
        CHECK(q.pop<double>().empty());
        CHECK_THROWS_WITH(q.push(filled(1, 2)), Catch::Contains("closed"));
    }
}

TEST_CASE("several producers and consumers: every array arrives exactly once", "[queue][multiprocess]")
{
    constexpr int producers = 3, consumers = 2, per_producer = 40;
    auto q = array_queue::create(8);
    // Each consumer reports how many arrays it got and the sum of their tags.
    auto report = shared_ndarray<std::int64_t>::create({consumers, 2});
    std::vector<pid_t> prod, cons;
    for (int c = 0; c < consumers; ++c) {
        cons.push_back(test_util::fork_child([&, c] {
            auto cq = array_queue::attach(q.name());
            std::int64_t n = 0, sum = 0;
            while (auto a = cq.pop<std::int64_t>()) {
                for (std::size_t i = 1; i < a.size(); ++i) {
                    if (a(i) != a(0)) {
                        return 1;
                    }
                }
                ++n;
                sum += a(0);
            }
            report(static_cast<std::size_t>(c), 0) = n;
            report(static_cast<std::size_t>(c), 1) = sum;
            return 0;
        }));
    }
    for (int p = 0; p < producers; ++p) {
        prod.push_back(test_util::fork_child([&, p] {
            auto pq = array_queue::attach(q.name());
            for (int i = 0; i < per_producer; ++i) {
                auto a = shared_ndarray<std::int64_t>::create({64});
                for (auto& x : a) {
                    x = p * 1000 + i;
                }
                pq.push(std::move(a));
            }
            return 0;
        }));
    }
    for (const pid_t p : prod) {
        CHECK(test_util::wait_child(p).ok());
    }
    q.close(); // consumers drain what is left, then see the end
    for (const pid_t c : cons) {
        CHECK(test_util::wait_child(c).ok());
    }
    std::int64_t n = 0, sum = 0, expected = 0;
    for (int c = 0; c < consumers; ++c) {
        n += report(static_cast<std::size_t>(c), 0);
        sum += report(static_cast<std::size_t>(c), 1);
    }
    for (int p = 0; p < producers; ++p) {
        for (int i = 0; i < per_producer; ++i) {
            expected += p * 1000 + i;
        }
    }
    CHECK(n == producers * per_producer);
    CHECK(sum == expected);
    CHECK(q.size() == 0);
}

TEST_CASE("pop with the wrong type throws dtype_mismatch and keeps the array", "[queue][errors]")
{
    auto q = array_queue::create(2);
    auto a = shared_ndarray<float>::create({3});
    a(2) = 7.0f;
    q.push(std::move(a));
    CHECK_THROWS_AS(q.pop<double>(), ndshm::dtype_mismatch);
    CHECK_THROWS_WITH(q.try_pop<std::int32_t>(), Catch::Contains("float32") && Catch::Contains("int32"));
    CHECK(q.size() == 1);
    CHECK(q.front_dtype() == ndshm::dtype::float32);
    auto b = q.pop<float>();
    CHECK(b(2) == 7.0f);
}

TEST_CASE("removing the queue unlinks the arrays still in it", "[queue][lifetime]")
{
    std::vector<std::string> names;
    std::string qname;
    {
        auto q = array_queue::create(4);
        qname = q.name();
        for (int i = 0; i < 3; ++i) {
            auto a = filled(16, i);
            names.push_back(a.name());
            q.push(std::move(a));
        }
        // A forked child's handles never remove the parent's queue.
        CHECK(test_util::run_child([&] {
                  auto copy = q;
                  return 0;
              }).ok());
        CHECK(test_util::shm_exists(qname));
        auto other = array_queue::attach(qname); // a non-owning handle does not remove it either
        other = array_queue();
        CHECK(test_util::shm_exists(qname));
    } // the owner's last handle
    CHECK_FALSE(test_util::shm_exists(qname));
    for (const auto& n : names) {
        CHECK_FALSE(test_util::shm_exists(n));
    }

    SECTION("remove() does it at once, and open handles see a closed queue")
    {
        auto q = array_queue::create(2);
        auto opened = array_queue::attach(q.name());
        auto a = filled(1, 0);
        const std::string an = a.name();
        q.push(std::move(a));
        opened.remove();
        CHECK_FALSE(test_util::shm_exists(q.name()));
        CHECK_FALSE(test_util::shm_exists(an));
        CHECK(q.closed());
        CHECK(q.pop<double>().empty());
    }
}

TEST_CASE("a process killed while it holds the queue's lock does not block the others", "[queue][fault]")
{
    auto q = array_queue::create(2);
    test_util::event holding, never;
    const pid_t pid = test_util::fork_child([&] {
        raw_queue raw(q.name());
        const std::string op = "test";
        ndshm::detail::lock_until(raw.lock(), std::chrono::steady_clock::time_point::max(), {op, q.name(), "lock"});
        holding.set();
        never.wait();
        return 0;
    });
    REQUIRE(holding.wait() == 1);
    REQUIRE(::kill(pid, SIGKILL) == 0);
    CHECK(test_util::wait_child(pid).signal == SIGKILL);
    q.push(filled(2, 5));
    CHECK(q.pop<double>()(1) == 5);
}

TEST_CASE("try_ and timed calls return on time while a stopped process holds the queue's lock",
          "[queue][multiprocess][fault]")
{
    auto q = array_queue::create(2);
    q.push(filled(2, 1.5));
    test_util::event holding, release;
    const pid_t pid = test_util::fork_child([&] {
        raw_queue raw(q.name());
        const std::string op = "test";
        ndshm::detail::lock_until(raw.lock(), std::chrono::steady_clock::time_point::max(), {op, q.name(), "lock"});
        holding.set();
        release.wait(); // stopped here, holding the lock, as if in the middle of a push
        return ndshm::detail::unlock(raw.lock()) ? 0 : 1;
    });
    REQUIRE(holding.wait() == 1);
    REQUIRE(test_util::stop_child(pid));

    shared_ndarray<double> got;
    double ms = test_util::elapsed_ms([&] { got = q.try_pop<double>(); });
    CHECK(got.empty());
    CHECK(ms < 1000);
    ms = test_util::elapsed_ms([&] { got = q.pop<double>(std::chrono::milliseconds(100)); });
    CHECK(got.empty());
    CHECK(ms >= 100);
    CHECK(ms < 100 + 1000);
    auto b = filled(2, 2.5);
    bool pushed = true;
    ms = test_util::elapsed_ms([&] { pushed = q.try_push(std::move(b)); });
    CHECK_FALSE(pushed);
    CHECK(ms < 1000);
    ms = test_util::elapsed_ms([&] { pushed = q.push(std::move(b), std::chrono::milliseconds(100)); });
    CHECK_FALSE(pushed);
    CHECK(ms < 100 + 1000);
    REQUIRE_FALSE(b.empty()); // a push that gave up leaves the array with the caller
    {
        // An untimed pop names the stopped holder once it has been stopped for the limit.
        const auto saved = ndshm::detail::lock_tuning();
        ndshm::detail::lock_tuning().stopped_holder = std::chrono::milliseconds(200);
        CHECK_THROWS_WITH(q.pop<double>(), Catch::Contains("stopped") && Catch::Contains(std::to_string(pid)));
        ndshm::detail::lock_tuning() = saved;
    }
    REQUIRE(test_util::continue_child(pid));
    release.set();
    CHECK(test_util::wait_child(pid).ok());
    CHECK(q.try_pop<double>()(1) == 1.5);
    CHECK(q.try_push(std::move(b)));
    CHECK(q.try_pop<double>()(0) == 2.5);
}

TEST_CASE("a queue whose lock bytes were overwritten is format_error for every call, never an abort or a hang",
          "[queue][errors]")
{
    auto q = array_queue::create(2);
    q.push(filled(2, 1.5)); // something to pop, and room to push
    raw_queue raw(q.name());
    auto other = array_queue::attach(q.name());
    test_util::check_corrupt_lock_refused(
        raw.lock(), q.name(),
        {
            {"try_pop", [&] { (void)other.try_pop<double>(); }},
            {"pop(50ms)", [&] { (void)other.pop<double>(std::chrono::milliseconds(50)); }},
            {"pop()", [&] { (void)other.pop<double>(); }},
            {"try_push", [&] { (void)other.try_push(filled(2, 2.5)); }},
            {"push(50ms)", [&] { (void)other.push(filled(2, 2.5), std::chrono::milliseconds(50)); }},
            {"push()", [&] { other.push(filled(2, 2.5)); }},
        });
    // Put back, the lock works again and the queued array is still there.
    CHECK(other.try_pop<double>()(1) == 1.5);
}

TEST_CASE("a consumer killed while it waits does not stop the queue", "[queue][fault]")
{
    auto q = array_queue::create(2);
    raw_queue raw(q.name());
    const pid_t victim = test_util::fork_child([&] { return q.pop<double>().empty() ? 1 : 2; });
    spin_until([&] { return raw.pop_waiters() == 1; });
    REQUIRE(::kill(victim, SIGKILL) == 0);
    CHECK(test_util::wait_child(victim).signal == SIGKILL);
    // Another consumer still gets woken, and the parent can still push and pop.
    const pid_t other = test_util::fork_child([&] {
        auto b = q.pop<double>();
        return !b.empty() && b(0) == 9 ? 0 : 1;
    });
    // The killed waiter's count stays (1, harmless: one spare wake-up); the new one makes it 2.
    spin_until([&] { return raw.pop_waiters() == 2; });
    q.push(filled(1, 9));
    CHECK(test_util::wait_child(other).ok());
    q.push(filled(1, 4));
    CHECK(q.pop<double>()(0) == 4);
}

TEST_CASE("bad input to a queue gets a clear ndshm error", "[queue][errors]")
{
    SECTION("invalid capacity") { CHECK_THROWS_WITH(array_queue::create(0), Catch::Contains("capacity 0")); }
    SECTION("a name that exists is never reused")
    {
        ndshm::options o;
        o.name = "ndshm_test_queue_" + std::to_string(::getpid());
        auto q = array_queue::create(1, o);
        CHECK(q.name() == o.name);
        CHECK_THROWS_AS(array_queue::create(1, o), ndshm::already_exists);
    }
    SECTION("opening what is not a queue")
    {
        CHECK_THROWS_AS(array_queue::attach("ndshm_test_no_such_queue"), ndshm::not_found);
        auto a = shared_ndarray<double>::create({4});
        CHECK_THROWS_AS(array_queue::attach(a.name()), ndshm::format_error);
        CHECK_THROWS_WITH(array_queue::attach(a.name()), Catch::Contains("not a queue"));
    }
    SECTION("pushing an array this process does not own")
    {
        auto q = array_queue::create(2);
        auto a = filled(3, 1);
        auto attached = shared_ndarray<double>::attach(a.name());
        CHECK_THROWS_WITH(q.push(std::move(attached)), Catch::Contains("does not own"));
        CHECK_FALSE(attached.empty());
        a.persist();
        CHECK_THROWS_WITH(q.push(std::move(a)), Catch::Contains("does not own"));
        ndshm::unlink(a.name());
        shared_ndarray<double> none;
        CHECK_THROWS_WITH(q.push(std::move(none)), Catch::Contains("empty"));
        // A forked child cannot give away its parent's array either.
        auto mine = filled(3, 2);
        CHECK(test_util::run_child([&] {
                  try {
                      q.push(std::move(mine));
                  } catch (const ndshm::error&) {
                      return 0;
                  }
                  return 1;
              }).ok());
        CHECK(q.size() == 0);
    }
    SECTION("a handle on part of a larger segment (an object member, a channel slot) is refused")
    {
        auto q = array_queue::create(2);
        auto whole = filled(8, 1);
        // A handle over elements 4..7 of `whole`'s segment: its name is the whole segment's name.
        ndshm::detail::npy_info part;
        part.type = ndshm::dtype::float64;
        part.shape = {4};
        part.size = 4;
        part.nbytes = 32;
        part.data_offset = 4096 + 32;
        auto view = ndshm::detail::array_access::make<double>(ndshm::detail::array_access::mapping_of(whole), part);
        CHECK(view(0) == 1);
        CHECK_THROWS_WITH(q.push(std::move(view)), Catch::Contains("part of a larger segment"));
        CHECK(q.size() == 0);
        q.push(std::move(whole)); // the whole array still goes
        CHECK(q.size() == 1);
    }
    SECTION("an empty handle")
    {
        array_queue none;
        CHECK_THROWS_WITH(none.pop<double>(), Catch::Contains("empty"));
        CHECK_FALSE(static_cast<bool>(none));
    }
    SECTION("a queued array that vanished is dropped with not_found, and the queue moves on")
    {
        auto q = array_queue::create(2);
        auto a = filled(1, 1);
        const std::string n = a.name();
        q.push(std::move(a));
        q.push(filled(1, 2));
        ndshm::unlink(n);
        CHECK_THROWS_AS(q.pop<double>(), ndshm::not_found);
        CHECK(q.pop<double>()(0) == 2);
    }
}

// ---- recycling: make, and segments that come back to the queue ---------------------------------------

namespace {

const ndshm::detail::queue_pool_record& pool_record(raw_queue& raw, std::size_t i)
{
    auto* ring = reinterpret_cast<unsigned char*>(&raw.control()) + sizeof(ndshm::detail::queue_control);
    const auto* records = reinterpret_cast<const ndshm::detail::queue_pool_record*>(
        ring + raw.control().capacity * sizeof(ndshm::detail::queue_entry));
    return records[i];
}

std::size_t pool_count(raw_queue& raw, std::uint32_t state)
{
    std::size_t n = 0;
    for (std::size_t i = 0; i < raw.control().pool_records; ++i) {
        n += __atomic_load_n(&pool_record(raw, i).state, __ATOMIC_ACQUIRE) == state ? 1 : 0;
    }
    return n;
}

} // namespace

TEST_CASE("a segment the consumer lets go comes back, and the next make reuses it with its mapping", "[queue]")
{
    auto q = array_queue::create(2);
    CHECK(q.recycled() == 4);
    raw_queue raw(q.name());
    auto a = q.make<double>({100});
    const std::string name = a.name();
    const double* where = a.data();
    CHECK(owner_pid(a) == static_cast<std::uint64_t>(::getpid())); // the maker owns it
    CHECK(pool_count(raw, ndshm::detail::pool_held) == 1);
    a(99) = 7;
    q.push(std::move(a));
    CHECK(pool_count(raw, ndshm::detail::pool_queued) == 1);
    auto b = q.pop<double>();
    REQUIRE_FALSE(b.empty());
    CHECK(b.name() == name);
    CHECK(b.data() == where); // the same mapping: nothing was mapped for the pop
    CHECK(b(99) == 7);
    b.reset(); // the consumer lets go: back to the queue, not unlinked
    CHECK(test_util::shm_exists(name));
    CHECK(pool_count(raw, ndshm::detail::pool_free) == 1);
    CHECK(q.reused() == 0);

    auto c = q.make<double>({100});
    CHECK(c.name() == name);
    CHECK(c.data() == where);
    CHECK(q.reused() == 1);
    SECTION("another shape of the same size rewrites the header")
    {
        c.reset();
        auto d = q.make<float>({10, 20});
        CHECK(d.name() == name);
        CHECK(q.reused() == 2);
        q.push(std::move(d));
        CHECK(q.front_dtype() == ndshm::dtype::float32);
        auto e = q.pop<float>();
        CHECK(e.shape() == ndshm::shape_type{10, 20});
        const auto any = ndshm::attach_any(name);
        CHECK(any.dtype() == ndshm::dtype::float32);
        CHECK(any.shape() == ndshm::shape_type{10, 20});
    }
    SECTION("a smaller array reuses a segment that has the room; the trailer follows the data")
    {
        c.reset();
        auto d = q.make<double>({80});
        CHECK(d.name() == name);
        d(79) = 3;
        q.push(std::move(d));
        auto e = q.pop<double>();
        CHECK(e.size() == 80);
        CHECK(e(79) == 3);
        const auto s = ndshm::inspect(name);
        CHECK(s.kind == ndshm::segment_kind::array);
        CHECK(s.shape == ndshm::shape_type{80});
    }
    SECTION("a larger array gets a segment of its own")
    {
        c.reset();
        auto big = q.make<double>({1000});
        CHECK(big.name() != name);
        CHECK(q.reused() == 1);
    }
    SECTION("close: segments let go afterwards are unlinked, not kept")
    {
        q.push(std::move(c));
        auto d = q.pop<double>();
        q.close();
        d.reset();
        CHECK_FALSE(test_util::shm_exists(name));
        CHECK_THROWS_WITH(q.make<double>({100}), Catch::Contains("closed"));
    }
    SECTION("trim unlinks the free segments")
    {
        c.reset();
        CHECK(q.trim() == 1);
        CHECK_FALSE(test_util::shm_exists(name));
        auto d = q.make<double>({100});
        CHECK(d.name() != name);
    }
}

TEST_CASE("the queue's owner removes the free segments of its pool with the queue", "[queue][lifetime]")
{
    std::vector<std::string> names;
    std::string qname;
    {
        auto q = array_queue::create(4);
        qname = q.name();
        for (int i = 0; i < 3; ++i) {
            auto a = q.make<std::int32_t>({16});
            names.push_back(a.name());
            q.push(std::move(a));
        }
        {
            auto back = q.pop<std::int32_t>(); // let go at once: free in the pool
        }
        auto held = q.pop<std::int32_t>(); // outlives the queue: its holder unlinks it
        const std::string held_name = held.name();
        q.reset();
        CHECK_FALSE(test_util::shm_exists(qname));
        CHECK(test_util::shm_exists(held_name));
        held.reset();
        CHECK_FALSE(test_util::shm_exists(held_name));
    }
    for (const auto& n : names) {
        CHECK_FALSE(test_util::shm_exists(n));
    }
}

TEST_CASE("a pooled array that is persisted or pushed elsewhere leaves the pool", "[queue][lifetime]")
{
    auto q = array_queue::create(2);
    raw_queue raw(q.name());
    SECTION("persisted")
    {
        q.push(q.make<double>({8}));
        auto a = q.pop<double>();
        const std::string name = a.name();
        a.persist();
        a.reset();
        CHECK(test_util::shm_exists(name)); // persisted: nobody unlinks it
        CHECK(pool_count(raw, ndshm::detail::pool_free) == 0);
        CHECK(pool_count(raw, ndshm::detail::pool_empty) == q.recycled());
        ndshm::unlink(name);
    }
    SECTION("pushed into another queue")
    {
        auto other = array_queue::create(2);
        auto a = q.make<double>({8});
        const std::string name = a.name();
        other.push(std::move(a));
        CHECK(pool_count(raw, ndshm::detail::pool_empty) == q.recycled());
        auto b = other.pop<double>();
        CHECK(b.name() == name);
        b.reset(); // an ordinary array of the other queue: unlinked
        CHECK_FALSE(test_util::shm_exists(name));
    }
}

TEST_CASE("recycled arrays cross processes: a producer makes, a consumer lets go, the producer reuses",
          "[queue][multiprocess]")
{
    constexpr int frames = 200;
    auto q = array_queue::create(3);
    const pid_t producer = test_util::fork_child([&] {
        auto out = array_queue::attach(q.name());
        for (int f = 0; f < frames; ++f) {
            auto a = out.make<std::uint32_t>({64, 64});
            std::fill(a.begin(), a.end(), static_cast<std::uint32_t>(f));
            out.push(std::move(a));
        }
        out.close();
        return 0;
    });
    std::set<std::string> names;
    int received = 0;
    bool intact = true;
    while (auto a = q.pop<std::uint32_t>()) {
        const auto f = static_cast<std::uint32_t>(received++);
        intact = intact && a.shape() == ndshm::shape_type{64, 64} &&
                 std::all_of(a.begin(), a.end(), [&](std::uint32_t v) { return v == f; });
        CHECK(owner_pid(a) == static_cast<std::uint64_t>(::getpid()));
        names.insert(a.name());
    } // each one goes back to the queue here
    CHECK(test_util::wait_child(producer).ok());
    CHECK(received == frames);
    CHECK(intact);
    CHECK(names.size() <= q.recycled()); // a handful of segments carried every frame
    CHECK(q.reused() == static_cast<std::uint64_t>(frames) - names.size());
}

TEST_CASE("letting a recycled array go never waits for a stopped process that holds the queue's lock",
          "[queue][multiprocess][fault]")
{
    auto q = array_queue::create(2);
    q.push(q.make<double>({4}));
    auto a = q.pop<double>();
    test_util::event holding, release;
    const pid_t pid = test_util::fork_child([&] {
        raw_queue raw(q.name());
        const std::string op = "test";
        ndshm::detail::lock_until(raw.lock(), std::chrono::steady_clock::time_point::max(), {op, q.name(), "lock"});
        holding.set();
        release.wait();
        return ndshm::detail::unlock(raw.lock()) ? 0 : 1;
    });
    REQUIRE(holding.wait() == 1);
    REQUIRE(test_util::stop_child(pid));
    CHECK(test_util::elapsed_ms([&] { a.reset(); }) < 100);
    REQUIRE(test_util::continue_child(pid));
    release.set();
    CHECK(test_util::wait_child(pid).ok());
    auto b = q.make<double>({4});
    CHECK(q.reused() == 1);
}

TEST_CASE("composite objects travel through a queue, in recycled segments", "[queue]")
{
    // Objects in a queue, without cereal: a segment that ndshm::share made (object_test.cpp covers
    // share(obj, queue) and load). Here: kinds stay apart.
    auto q = array_queue::create(2);
    q.push(q.make<double>({3}));
    CHECK_FALSE(q.front_is_object());
    CHECK_THROWS_WITH(q.pop_object(), Catch::Contains("pop it with pop<T>()"));
    CHECK(q.size() == 1); // it stays queued
    CHECK(q.pop<double>().size() == 3);
    ndshm::shared_object none;
    CHECK_THROWS_WITH(q.push(std::move(none)), Catch::Contains("empty"));
    CHECK(q.try_pop_object().empty());
}

TEST_CASE("corrupt pool records give a result or an ndshm error, never a crash or a foreign unlink", "[queue][errors]")
{
    auto q = array_queue::create(2);
    raw_queue raw(q.name());
    auto bystander = filled(100, 1);
    std::vector<std::string> pooled;
    {
        auto a = q.make<double>({100});
        pooled.push_back(a.name());
        q.push(std::move(a));
        auto back = q.make<double>({100});
        pooled.push_back(back.name());
    } // one queued, one free in the pool
    auto* rec = const_cast<ndshm::detail::queue_pool_record*>(&pool_record(raw, 0));
    // Segments whose records are overwritten are lost to the queue: this test removes them itself.
    struct cleanup {
        std::vector<std::string>& names;
        ~cleanup()
        {
            for (const auto& n : names) {
                if (test_util::shm_exists(n)) {
                    ndshm::unlink(n);
                }
            }
        }
    } cleanup_at_end{pooled};
    SECTION("a free record naming another segment")
    {
        for (std::size_t i = 0; i < q.recycled(); ++i) {
            auto* r = const_cast<ndshm::detail::queue_pool_record*>(&pool_record(raw, i));
            if (r->state == ndshm::detail::pool_free) {
                std::memset(r->name, 0, sizeof r->name);
                std::memcpy(r->name, bystander.name().data(), bystander.name().size());
            }
        }
        auto a = q.make<double>({100}); // not the bystander: its identity differs
        CHECK(a.name() != bystander.name());
        pooled.push_back(a.name());
        CHECK(bystander(99) == 1);
        q.trim();
        CHECK(test_util::shm_exists(bystander.name()));
    }
    SECTION("random bytes in every record")
    {
        std::uint64_t x = 0x9e3779b97f4a7c15ull;
        for (std::size_t i = 0; i < q.recycled(); ++i) {
            auto* bytes = reinterpret_cast<unsigned char*>(rec + i);
            for (std::size_t k = 0; k < sizeof *rec; ++k) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes[k] = static_cast<unsigned char>(x);
            }
        }
        try {
            auto a = q.pop<double>();
            auto b = q.make<double>({100});
            pooled.push_back(b.name());
            q.push(std::move(b));
            (void)q.trim();
        } catch (const ndshm::error&) {
        }
        CHECK(test_util::shm_exists(bystander.name()));
    }
}

TEST_CASE("a moved-from or reset array_queue is empty, and every call on it is a clear error", "[queue][errors]")
{
    auto q = array_queue::create(2);
    const std::string name = q.name();
    auto moved = std::move(q);
    CHECK(moved.name() == name);
    for (array_queue* h : {&q, &moved}) {
        if (h == &moved) {
            moved.reset();
        }
        array_queue& e = *h;
        CHECK(e.empty());
        CHECK_FALSE(static_cast<bool>(e));
        CHECK(e.name().empty());
        CHECK(e.capacity() == 0);
        CHECK(e.recycled() == 0);
        CHECK(e.size() == 0);
        CHECK_FALSE(e.closed());
        CHECK(e.reused() == 0);
        const auto empty_error = Catch::Contains("array_queue handle is empty");
        CHECK_THROWS_WITH(e.make<double>({2}), empty_error);
        CHECK_THROWS_WITH(e.push(filled(1, 1)), empty_error);
        CHECK_THROWS_WITH(e.push(filled(1, 1), std::chrono::milliseconds(1)), empty_error);
        CHECK_THROWS_WITH(e.try_push(filled(1, 1)), empty_error);
        CHECK_THROWS_WITH(e.push(ndshm::shared_object()), empty_error);
        CHECK_THROWS_WITH(e.push(ndshm::shared_object(), std::chrono::milliseconds(1)), empty_error);
        CHECK_THROWS_WITH(e.try_push(ndshm::shared_object()), empty_error);
        CHECK_THROWS_WITH(e.make<float>({2, 2}, ndshm::order::fortran), empty_error);
        CHECK_THROWS_WITH(e.pop<double>(), empty_error);
        CHECK_THROWS_WITH(e.pop<double>(std::chrono::milliseconds(1)), empty_error);
        CHECK_THROWS_WITH(e.try_pop<double>(), empty_error);
        CHECK_THROWS_WITH(e.pop_object(), empty_error);
        CHECK_THROWS_WITH(e.pop_object(std::chrono::milliseconds(1)), empty_error);
        CHECK_THROWS_WITH(e.try_pop_object(), empty_error);
        CHECK_THROWS_WITH(e.front_dtype(), empty_error);
        CHECK_THROWS_WITH(e.front_is_object(), empty_error);
        CHECK_THROWS_WITH(e.close(), empty_error);
        CHECK_THROWS_WITH(e.remove(), empty_error);
        CHECK_THROWS_WITH(e.trim(), empty_error);
        const array_queue copy = e; // a copy of an empty handle is empty too
        CHECK(copy.empty());
        CHECK(copy.name().empty());
        e = array_queue();
        CHECK(e.empty());
    }
    CHECK_FALSE(test_util::shm_exists(name)); // the owner's last handle (reset) removed it
}

TEST_CASE("a recycled handoff maps nothing, opens nothing, reserves nothing and wakes nobody", "[queue]")
{
    auto q = array_queue::create(2);
    const auto round = [&](double v) {
        auto a = q.make<double>({256, 256});
        a(255, 255) = v;
        q.push(std::move(a));
        auto b = q.pop<double>();
        return b(255, 255) == v;
    };
    CHECK(round(1)); // the first round makes the segment and maps it
    test_util::count_syscalls counting;
    bool ok = true;
    for (int i = 0; i < 100; ++i) {
        ok = round(i) && ok;
    }
    CHECK(ok);
    const auto& c = counting.counts();
    CHECK(c.total() == 0);
    CHECK(c.open == 0);
    CHECK(c.map == 0);
    CHECK(c.reserve == 0);
    CHECK(c.wake == 0);
    CHECK(q.reused() == 100);
}

TEST_CASE("between two processes, recycled handoffs make no system call but futex waits", "[queue][multiprocess]")
{
    // Lockstep: the consumer acknowledges each frame after letting it go, so one segment carries every
    // frame after the first, and both sides have it mapped.
    constexpr int frames = 100;
    auto q = array_queue::create(2);
    test_util::event done;
    int counts_pipe[2];
    REQUIRE(::pipe(counts_pipe) == 0);
    const pid_t consumer = test_util::fork_child([&] {
        auto in = array_queue::attach(q.name());
        std::unique_ptr<test_util::count_syscalls> counting;
        bool ok = true;
        for (int f = 0; f < frames; ++f) {
            if (f == 1) {
                counting = std::make_unique<test_util::count_syscalls>();
            }
            {
                auto a = in.pop<float>();
                ok = ok && a(1023) == static_cast<float>(f);
            }
            done.set();
        }
        const test_util::sys_counts c = counting->counts();
        return ::write(counts_pipe[1], &c, sizeof c) == static_cast<ssize_t>(sizeof c) && ok ? 0 : 1;
    });
    std::unique_ptr<test_util::count_syscalls> counting;
    for (int f = 0; f < frames; ++f) {
        if (f == 1) {
            counting = std::make_unique<test_util::count_syscalls>();
        }
        auto a = q.make<float>({1024});
        a(1023) = static_cast<float>(f);
        q.push(std::move(a));
        REQUIRE(done.wait() == 1);
    }
    const test_util::sys_counts mine = counting->counts();
    counting.reset();
    CHECK(test_util::wait_child(consumer).ok());
    test_util::sys_counts theirs;
    REQUIRE(::read(counts_pipe[0], &theirs, sizeof theirs) == static_cast<ssize_t>(sizeof theirs));
    ::close(counts_pipe[0]);
    ::close(counts_pipe[1]);
    for (const test_util::sys_counts* c : {&mine, static_cast<const test_util::sys_counts*>(&theirs)}) {
        CHECK(c->open == 0);
        CHECK(c->map == 0);
        CHECK(c->reserve == 0);
        CHECK(c->stat == 0);
        CHECK(c->unlink == 0);
        CHECK(c->liveness == 0);
    }
    CHECK(q.reused() == frames - 1);
}
