// The loan/publish channel: single-process semantics, then real producer and consumer processes.
#include <ndshm/any_ndarray.hpp>
#include <ndshm/channel.hpp>

#include "lock_corruption.hpp"
#include "sys_counter.hpp"
#include "test_util.hpp"

#include <catch2/catch.hpp>
#include <xtensor/xmath.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <numeric>
#include <set>
#include <utility>
#include <string>
#include <vector>

using ndshm::channel;
using namespace std::chrono_literals;

namespace {

// A channel's segment mapped straight from /dev/shm, to reach its control block as another process would.
class raw_channel {
public:
    raw_channel(const std::string& name, std::size_t data_bytes)
    {
        const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
        REQUIRE(fd >= 0);
        struct stat st {};
        REQUIRE(::fstat(fd, &st) == 0);
        m_size = static_cast<std::size_t>(st.st_size);
        m_base = static_cast<unsigned char*>(::mmap(nullptr, m_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        ::close(fd);
        REQUIRE(m_base != MAP_FAILED);
        m_ctl = ndshm::detail::trailer_offset(4096 + data_bytes) + sizeof(ndshm::detail::trailer);
    }
    ~raw_channel() { ::munmap(m_base, m_size); }
    raw_channel(const raw_channel&) = delete;
    raw_channel& operator=(const raw_channel&) = delete;
    ndshm::detail::channel_control& control()
    {
        return *reinterpret_cast<ndshm::detail::channel_control*>(m_base + m_ctl);
    }

private:
    unsigned char* m_base = nullptr;
    std::size_t m_size = 0;
    std::size_t m_ctl = 0;
};

} // namespace

TEST_CASE("loan, write in place, publish, receive, release", "[channel]")
{
    auto ch = channel<float>::create({4, 3}, 2);
    CHECK(ch.slots() == 2);
    CHECK(ch.slot_shape() == ndshm::shape_type{4, 3});
    auto s = ch.loan();
    REQUIRE_FALSE(s.empty());
    CHECK(s.array().shape() == ndshm::shape_type{4, 3});
    s.array()(3, 2) = 7.5f;
    s.view() += 1.0f;
    const float* where = s.data();
    ch.publish(std::move(s));
    CHECK(s.empty());
    auto r = ch.receive();
    REQUIRE_FALSE(r.empty());
    CHECK(r.array()(3, 2) == 8.5f);
    CHECK(xt::sum(r.array().view())() == Approx(8.5f + 11.0f));
    CHECK(r.array().data() == where); // the same memory: no copy
    r.release();
    CHECK(r.empty());
}

TEST_CASE("slots come back to the pool, loan applies back-pressure", "[channel]")
{
    auto ch = channel<std::int32_t>::create({8}, 2);
    auto a = ch.loan();
    auto b = ch.loan();
    CHECK(a.index() != b.index());
    CHECK(ch.try_loan().empty());   // every slot is loaned
    CHECK(ch.loan(5ms).empty());    // a bounded wait ends empty
    CHECK(ch.loan(-5ms).empty());   // a negative timeout is a try, as everywhere in the library
    CHECK(ch.receive(0ms).empty()); // nothing published: a zero timeout does not wait
    const std::size_t first = a.index();
    a.release(); // an unpublished loan goes back
    CHECK(a.empty());
    CHECK_THROWS_AS(a.index(), ndshm::error); // no stale index
    // Slots are loaned in turn: the next free one after the last loan, which is the one released.
    auto c = ch.try_loan();
    REQUIRE_FALSE(c.empty());
    CHECK(c.index() == first);
    ch.publish(std::move(b));
    ch.publish(std::move(c));
    CHECK(ch.try_loan().empty()); // both published, none received yet
    {
        auto r = ch.try_receive();
        REQUIRE_FALSE(r.empty());
    } // released here
    CHECK_FALSE(ch.try_loan().empty());
}

TEST_CASE("receive is first published, first received", "[channel]")
{
    auto ch = channel<std::int64_t>::create({1}, 4);
    for (std::int64_t v = 0; v < 3; ++v) {
        auto s = ch.loan();
        s.array()(0) = v;
        ch.publish(std::move(s));
    }
    for (std::int64_t v = 0; v < 3; ++v) {
        auto r = ch.receive(0ns);
        REQUIRE_FALSE(r.empty());
        CHECK(r.array()(0) == v);
    }
    CHECK(ch.try_receive().empty());
}

TEST_CASE("a producer process streams frames to a consumer process through few slots", "[channel][multiprocess]")
{
    constexpr int frames = 200;
    auto ch = channel<std::uint32_t>::create({64, 64}, 3);
    const std::string name = ch.name();
    const pid_t producer = test_util::fork_child([&] {
        auto out = channel<std::uint32_t>::attach(name);
        for (std::uint32_t f = 0; f < frames; ++f) {
            auto s = out.loan(); // blocks while the consumer holds every slot
            std::fill(s.data(), s.data() + s.size(), f);
            out.publish(std::move(s));
        }
        out.close();
        return 0;
    });
    int received = 0;
    bool intact = true;
    for (;;) {
        auto r = ch.receive();
        if (r.empty()) {
            break; // closed and drained
        }
        const auto f = static_cast<std::uint32_t>(received);
        intact = intact && std::all_of(r.array().begin(), r.array().end(), [&](std::uint32_t v) { return v == f; });
        ++received;
    }
    CHECK(received == frames);
    CHECK(intact);
    CHECK(test_util::wait_child(producer).ok());
}

TEST_CASE("several consumers each get every frame exactly once", "[channel][multiprocess]")
{
    constexpr std::uint64_t frames = 300;
    auto ch = channel<std::uint64_t>::create({16}, 4);
    const std::string name = ch.name();
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::vector<pid_t> consumers;
    for (int c = 0; c < 2; ++c) {
        consumers.push_back(test_util::fork_child([&] {
            ::close(fds[0]);
            auto in = channel<std::uint64_t>::attach(name);
            for (;;) {
                auto r = in.receive();
                if (r.empty()) {
                    return 0;
                }
                const std::uint64_t id = r.array()(0);
                if (::write(fds[1], &id, sizeof id) != static_cast<ssize_t>(sizeof id)) {
                    return 2;
                }
            }
        }));
    }
    ::close(fds[1]);
    for (std::uint64_t f = 0; f < frames; ++f) {
        auto s = ch.loan();
        std::fill(s.data(), s.data() + s.size(), f);
        ch.publish(std::move(s));
    }
    ch.close();
    std::multiset<std::uint64_t> seen;
    std::uint64_t id = 0;
    while (::read(fds[0], &id, sizeof id) == static_cast<ssize_t>(sizeof id)) {
        seen.insert(id);
    }
    ::close(fds[0]);
    for (pid_t pid : consumers) {
        CHECK(test_util::wait_child(pid).ok());
    }
    CHECK(seen.size() == frames);
    CHECK(std::set<std::uint64_t>(seen.begin(), seen.end()).size() == frames);
}

TEST_CASE("slots held by a consumer that died are reclaimed", "[channel][multiprocess]")
{
    auto ch = channel<double>::create({32}, 2);
    for (int i = 0; i < 2; ++i) {
        auto s = ch.loan();
        ch.publish(std::move(s));
    }
    test_util::event holding;
    const pid_t pid = test_util::fork_child([&] {
        auto in = channel<double>::attach(ch.name());
        auto a = in.receive();
        auto b = in.receive();
        holding.set(a.empty() || b.empty() ? 2 : 1);
        for (;;) {
            ::pause(); // killed while holding both slots
        }
        return 0;
    });
    REQUIRE(holding.wait() == 1);
    CHECK(ch.try_loan().empty()); // the consumer is alive and holds both
    ::kill(pid, SIGKILL);
    CHECK(test_util::wait_child(pid).signal == SIGKILL);
    auto a = ch.try_loan();
    auto b = ch.try_loan();
    CHECK_FALSE(a.empty());
    CHECK_FALSE(b.empty());
    CHECK(ch.reclaimed() == 2);
}

TEST_CASE("a channel whose lock bytes were overwritten is format_error for every call, never an abort or a hang",
          "[channel][errors]")
{
    auto ch = channel<double>::create({32}, 3);
    {
        auto s = ch.loan();
        s.view() = 7.0;
        ch.publish(std::move(s)); // something to receive, and two free slots to loan
    }
    raw_channel raw(ch.name(), 3 * 32 * sizeof(double));
    auto other = channel<double>::attach(ch.name());
    test_util::check_corrupt_lock_refused(raw.control().consumer_lock, ch.name(),
                                          {
                                              {"try_receive", [&] { auto in = other.try_receive(); }},
                                              {"receive(50ms)", [&] { auto in = other.receive(50ms); }},
                                              {"receive()", [&] { auto in = other.receive(); }},
                                          });
    test_util::check_corrupt_lock_refused(raw.control().producer_lock, ch.name(),
                                          {
                                              {"try_loan", [&] { auto out = other.try_loan(); }},
                                              {"loan(50ms)", [&] { auto out = other.loan(50ms); }},
                                              {"loan()", [&] { auto out = other.loan(); }},
                                          });
    // Put back, both locks work again and the published frame is still there.
    auto in = other.try_receive();
    REQUIRE_FALSE(in.empty());
    CHECK(in.array()(31) == 7.0);
}

TEST_CASE("try_ and timed calls return on time while a stopped process holds the channel's lock",
          "[channel][multiprocess]")
{
    auto ch = channel<double>::create({32}, 3);
    {
        auto s = ch.loan();
        s.view() = 7.0;
        ch.publish(std::move(s));
    }
    auto held = ch.receive(); // released below, while the lock is taken
    REQUIRE_FALSE(held.empty());
    auto loaned = ch.loan();
    auto pending = ch.loan(); // every slot is out: loans now have to wait
    ch.publish(std::move(pending));
    test_util::event holding, release;
    const pid_t pid = test_util::fork_child([&] {
        raw_channel raw(ch.name(), 3 * 32 * sizeof(double));
        const std::string op = "test";
        // Both sides' locks: the producers' (loans) and the consumers' (receipt).
        ndshm::detail::lock_until(raw.control().producer_lock, std::chrono::steady_clock::time_point::max(),
                                  {op, ch.name(), "lock"});
        ndshm::detail::lock_until(raw.control().consumer_lock, std::chrono::steady_clock::time_point::max(),
                                  {op, ch.name(), "lock"});
        holding.set();
        release.wait(); // stopped here, holding the locks
        const bool ok = ndshm::detail::unlock(raw.control().consumer_lock);
        return ndshm::detail::unlock(raw.control().producer_lock) && ok ? 0 : 1;
    });
    REQUIRE(holding.wait() == 1);
    REQUIRE(test_util::stop_child(pid));

    ndshm::slot<const double> in;
    double ms = test_util::elapsed_ms([&] { in = ch.try_receive(); });
    CHECK(in.empty());
    CHECK(ms < 1000);
    ms = test_util::elapsed_ms([&] { in = ch.receive(100ms); });
    CHECK(in.empty());
    CHECK(ms >= 100);
    CHECK(ms < 100 + 1000);
    ndshm::slot<double> out;
    ms = test_util::elapsed_ms([&] { out = ch.try_loan(); });
    CHECK(out.empty());
    CHECK(ms < 1000);
    ms = test_util::elapsed_ms([&] { out = ch.loan(100ms); });
    CHECK(out.empty());
    CHECK(ms < 100 + 1000);
    // Letting slots go never waits for the lock.
    ms = test_util::elapsed_ms([&] {
        held.release();
        loaned.release();
    });
    CHECK(ms < 100);
    {
        const auto saved = ndshm::detail::lock_tuning();
        ndshm::detail::lock_tuning().stopped_holder = std::chrono::milliseconds(200);
        CHECK_THROWS_WITH(ch.receive(), Catch::Contains("stopped") && Catch::Contains(std::to_string(pid)));
        ndshm::detail::lock_tuning() = saved;
    }
    REQUIRE(test_util::continue_child(pid));
    release.set();
    CHECK(test_util::wait_child(pid).ok());
    in = ch.try_receive();
    REQUIRE_FALSE(in.empty());
    in.release();
    // All three slots are free again: the two released while the lock was taken, and this one.
    auto s1 = ch.try_loan(), s2 = ch.try_loan(), s3 = ch.try_loan();
    CHECK_FALSE(s1.empty());
    CHECK_FALSE(s2.empty());
    CHECK_FALSE(s3.empty());
    CHECK(ch.reclaimed() == 0);
}

TEST_CASE("close wakes a receiver and refuses loans", "[channel][multiprocess]")
{
    auto ch = channel<std::uint8_t>::create({4}, 1);
    const pid_t pid = test_util::fork_child([&] {
        auto in = channel<std::uint8_t>::attach(ch.name());
        return in.receive().empty() ? 0 : 1; // blocks until the close
    });
    ch.close();
    CHECK(test_util::wait_child(pid).ok());
    CHECK(ch.closed());
    CHECK_THROWS_WITH(ch.loan(), Catch::Contains("closed"));
}

TEST_CASE("attach checks that the segment is a channel of the right type", "[channel][bad-input]")
{
    auto ch = channel<float>::create({2}, 2);
    CHECK_THROWS_AS(channel<double>::attach(ch.name()), ndshm::dtype_mismatch);
    auto a = ndshm::shared_ndarray<float>::create({4, 2});
    CHECK_THROWS_WITH(channel<float>::attach(a.name()), Catch::Contains("not a channel"));
    CHECK_THROWS_AS(channel<float>::attach("ndshm_test_no_channel"), ndshm::not_found);
    CHECK_THROWS_AS(channel<float>::create({2}, 0), ndshm::error);
    // The segment is a valid .npy (NumPy sees every slot), but ndshm refuses it as a plain array.
    CHECK_THROWS_WITH(ndshm::attach_any(ch.name()), Catch::Contains("channel<T>::attach"));
}

TEST_CASE("a steady stream makes no system call: publish and release wake only a sleeper", "[channel]")
{
    auto ch = channel<std::uint64_t>::create({512}, 4);
    const auto round = [&](std::uint64_t v) {
        auto s = ch.loan();
        s.array()(511) = v;
        ch.publish(std::move(s));
        auto r = ch.receive();
        return r.array()(511) == v;
    };
    CHECK(round(1));
    test_util::count_syscalls counting;
    bool ok = true;
    for (std::uint64_t i = 0; i < 1000; ++i) {
        ok = round(i) && ok;
    }
    CHECK(ok);
    CHECK(counting.counts().total() == 0);
    CHECK(ch.published() == 1001);
}

TEST_CASE("the spin before a sleep shrinks only after a run of failures and comes back at once", "[channel]")
{
    using policy = ndshm::detail::spin_policy;
    policy p(20us);
    const auto never = [] { return false; };
    const auto always = [] { return true; };
    const auto no_deadline = std::chrono::steady_clock::time_point::max();
    CHECK(p.budget() == 20us);
    for (std::int64_t i = 1; i < policy::failures_to_shrink; ++i) {
        CHECK_FALSE(p.spin(never, no_deadline));
    }
    CHECK(p.budget() == 20us); // single failures (a peer descheduled for a moment) keep the budget
    CHECK_FALSE(p.spin(never, no_deadline));
    CHECK(p.budget() == 5us); // a run of them is a slow stream: spin less
    CHECK(p.spin(always, no_deadline));
    CHECK(p.budget() == 20us); // a spin that caught its condition restores it
    for (std::int64_t i = 0; i < 2 * policy::failures_to_shrink; ++i) {
        CHECK_FALSE(p.spin(never, no_deadline));
    }
    CHECK(p.budget() == 1250ns);
    p.slept(policy::short_sleep * 20us + 1us); // a long sleep says nothing
    CHECK(p.budget() == 1250ns);
    p.slept(100us); // a short one, wake-up latency included: a spin would have caught it
    CHECK(p.budget() == 20us);
    p.set_limit(0us);
    CHECK_FALSE(p.spin(always, no_deadline)); // a limit of zero never spins
}

TEST_CASE("a sleeping receiver is woken by a publish, a sleeping producer by a release", "[channel][multiprocess]")
{
    auto ch = channel<std::uint32_t>::create({4}, 1);
    ch.set_spin_limit(std::chrono::nanoseconds::zero());
    CHECK(ch.spin_limit() == std::chrono::nanoseconds::zero());
    test_util::event attached;
    const pid_t pid = test_util::fork_child([&] {
        auto in = channel<std::uint32_t>::attach(ch.name());
        in.set_spin_limit(std::chrono::nanoseconds::zero()); // sleep at once: the wake-ups are what is tested
        attached.set();
        for (std::uint32_t f = 0; f < 50; ++f) {
            auto r = in.receive();
            if (r.empty() || r.array()(0) != f) {
                return 1;
            }
        }
        return in.receive().empty() ? 0 : 2; // closed and drained
    });
    REQUIRE(attached.wait() == 1);
    for (std::uint32_t f = 0; f < 50; ++f) {
        auto s = ch.loan(); // one slot: waits for the consumer's release
        s.array()(0) = f;
        ch.publish(std::move(s));
    }
    ch.close();
    CHECK(test_util::wait_child(pid).ok());
}

TEST_CASE("a moved-from or reset channel, and a moved-from or released slot, are empty", "[channel][errors]")
{
    auto ch = channel<float>::create({3, 2}, 2);
    const std::string name = ch.name();
    const auto default_spin = channel<float>().spin_limit();
    ch.set_spin_limit(default_spin * 3); // an empty handle forgets it: it is a default-constructed one
    auto s = ch.loan();
    REQUIRE_FALSE(s.empty());
    auto t = std::move(s);
    auto moved = std::move(ch);
    CHECK(moved.name() == name);
    CHECK(moved.slots() == 2);

    for (ndshm::slot<float>* p : {&s, &t}) {
        if (p == &t) {
            t.release();
        }
        ndshm::slot<float>& e = *p;
        CHECK(e.empty());
        CHECK_FALSE(static_cast<bool>(e));
        CHECK(e.size() == 0);
        CHECK(e.shape().empty());
        CHECK(e.data() == nullptr);
        CHECK(std::as_const(e).data() == nullptr);
        CHECK(e.array().empty());
        CHECK(e.array().size() == 0);
        CHECK(e.view().size() == 0);
        CHECK(std::as_const(e).view().size() == 0);
        CHECK_THROWS_AS(e.index(), ndshm::error);
        e.release(); // again: nothing happens
        CHECK_THROWS_WITH(moved.publish(std::move(e)), Catch::Contains("empty"));
    }
    // Both slots are free again: the released one and the one never published.
    auto a = moved.try_loan();
    auto b = moved.try_loan();
    CHECK_FALSE(a.empty());
    CHECK_FALSE(b.empty());
    a.release();
    b.release();

    for (channel<float>* p : {&ch, &moved}) {
        if (p == &moved) {
            moved.reset();
        }
        channel<float>& e = *p;
        CHECK(e.empty());
        CHECK_FALSE(static_cast<bool>(e));
        CHECK(e.name().empty());
        CHECK(e.slots() == 0);
        CHECK(e.slot_shape().empty());
        CHECK_FALSE(e.closed());
        CHECK(e.reclaimed() == 0);
        CHECK(e.published() == 0);
        e.persist(); // nothing to persist
        const auto empty_error = Catch::Contains("channel handle is empty");
        CHECK_THROWS_WITH(e.loan(), empty_error);
        CHECK_THROWS_WITH(e.loan(std::chrono::milliseconds(1)), empty_error);
        CHECK_THROWS_WITH(e.try_loan(), empty_error);
        CHECK_THROWS_WITH(e.receive(), empty_error);
        CHECK_THROWS_WITH(e.try_receive(), empty_error);
        CHECK_THROWS_WITH(e.publish(ndshm::slot<float>()), empty_error);
        CHECK_THROWS_WITH(e.close(), empty_error);
        CHECK(e.spin_limit() == default_spin);
        const channel<float> copy = e; // a copy of an empty handle is empty too
        CHECK(copy.empty());
        CHECK(copy.name().empty());
        CHECK(copy.slots() == 0);
    }
    CHECK_FALSE(test_util::shm_exists(name)); // the creator's last handle unlinked it
}

TEST_CASE("a moved-from or released received slot is empty, and the channel gets it back", "[channel][errors]")
{
    auto ch = channel<float>::create({4}, 1);
    auto out = ch.loan();
    out.array()(0) = 7.0f;
    ch.publish(std::move(out));
    CHECK(out.empty()); // published: the channel holds it now
    CHECK(out.data() == nullptr);
    auto r = ch.receive();
    REQUIRE_FALSE(r.empty());
    CHECK(r.array()(0) == 7.0f);
    auto moved = std::move(r);
    CHECK(moved.index() == 0);
    CHECK(ch.try_loan().empty()); // the received slot is still held, by `moved`

    for (ndshm::slot<const float>* p : {&r, &moved}) {
        if (p == &moved) {
            moved.release();
        }
        ndshm::slot<const float>& e = *p;
        CHECK(e.empty());
        CHECK_FALSE(static_cast<bool>(e));
        CHECK(e.size() == 0);
        CHECK(e.shape().empty());
        CHECK(e.data() == nullptr);
        CHECK(std::as_const(e).data() == nullptr);
        CHECK(e.array().empty());
        CHECK(e.array().name().empty());
        CHECK(e.view().size() == 0);
        CHECK_THROWS_AS(e.index(), ndshm::error);
        e.release(); // again: nothing happens
        ndshm::slot<const float> other = std::move(e);
        CHECK(other.empty());
    }
    auto again = ch.try_loan(); // the one slot is free again
    CHECK_FALSE(again.empty());
    // Moving a loan onto a held slot returns the held one first.
    auto none = ch.try_loan();
    CHECK(none.empty());
    none = std::move(again);
    CHECK_FALSE(none.empty());
    CHECK(again.empty());
    none = ndshm::slot<float>();
    CHECK(none.empty());
    CHECK_FALSE(ch.try_loan().empty());
}
