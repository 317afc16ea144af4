// ndshm::uninterruptible: SIGINT, SIGTERM and SIGHUP sent inside the guard are delivered after it, not
// before. The multi-process cases record the order of events in a pipe; nothing waits on time.
#include <ndshm/uninterruptible.hpp>

#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <string>

namespace {

volatile sig_atomic_t g_delivered = 0;
int g_order_fd = -1; // the pipe a child writes its order of events into

extern "C" void count_signal(int) { g_delivered = g_delivered + 1; }
extern "C" void note_signal(int)
{
    const char c = 'S';
    (void)!::write(g_order_fd, &c, 1);
}

// Installs a handler for `sig` for a scope, and restores the previous one.
class handler_scope {
public:
    handler_scope(int sig, void (*fn)(int)) : m_sig(sig)
    {
        struct sigaction sa {};
        sa.sa_handler = fn;
        sigemptyset(&sa.sa_mask);
        ::sigaction(sig, &sa, &m_old);
    }
    ~handler_scope() { ::sigaction(m_sig, &m_old, nullptr); }
    handler_scope(const handler_scope&) = delete;
    handler_scope& operator=(const handler_scope&) = delete;

private:
    int m_sig;
    struct sigaction m_old {};
};

// Reads everything a child writes into the pipe until it exits.
std::string read_all(int fd)
{
    std::string s;
    char buf[64];
    for (;;) {
        const ssize_t r = ::read(fd, buf, sizeof buf);
        if (r > 0) {
            s.append(buf, static_cast<std::size_t>(r));
        } else if (r == 0 || errno != EINTR) {
            return s;
        }
    }
}

void mark(char c) { (void)!::write(g_order_fd, &c, 1); }

} // namespace

TEST_CASE("a signal raised inside the guard is delivered when it ends", "[uninterruptible]")
{
    for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
        handler_scope h(sig, count_signal);
        g_delivered = 0;
        {
            ndshm::uninterruptible guard;
            CHECK_FALSE(ndshm::uninterruptible::signal_pending());
            ::raise(sig);
            CHECK(g_delivered == 0); // deferred
            CHECK(ndshm::uninterruptible::signal_pending());
        }
        CHECK(g_delivered == 1); // delivered as the guard ended
        CHECK_FALSE(ndshm::uninterruptible::signal_pending());
    }
}

TEST_CASE("guards nest: only the outermost one delivers", "[uninterruptible]")
{
    handler_scope h(SIGHUP, count_signal);
    g_delivered = 0;
    {
        ndshm::uninterruptible outer;
        {
            ndshm::uninterruptible inner;
            ::raise(SIGHUP);
        }
        CHECK(g_delivered == 0); // the inner guard's end leaves the outer one in force
        CHECK(ndshm::uninterruptible::signal_pending());
    }
    CHECK(g_delivered == 1);
}

TEST_CASE("a guard leaves signals blocked that were blocked before it", "[uninterruptible]")
{
    handler_scope h(SIGTERM, count_signal);
    g_delivered = 0;
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    REQUIRE(::pthread_sigmask(SIG_BLOCK, &term, &old) == 0);
    {
        ndshm::uninterruptible guard;
        ::raise(SIGTERM);
    }
    CHECK(g_delivered == 0); // the caller's own block is not undone
    REQUIRE(::pthread_sigmask(SIG_SETMASK, &old, nullptr) == 0);
    CHECK(g_delivered == 1);
}

TEST_CASE("a signal another process sends inside the guard arrives after it", "[uninterruptible][multiprocess]")
{
    int order[2];
    REQUIRE(::pipe2(order, O_CLOEXEC) == 0);
    test_util::event inside, sent;
    const pid_t pid = test_util::fork_child([&] {
        ::close(order[0]);
        g_order_fd = order[1];
        handler_scope h(SIGTERM, note_signal);
        {
            ndshm::uninterruptible guard;
            inside.set();
            sent.wait(); // the parent has sent SIGTERM by now: it waits, pending
            mark('A');   // still inside the critical section
        }
        mark('B'); // after the guard, and after the handler ran
        return 0;
    });
    ::close(order[1]);
    REQUIRE(inside.wait() == 1);
    REQUIRE(::kill(pid, SIGTERM) == 0);
    sent.set();
    const std::string seen = read_all(order[0]);
    ::close(order[0]);
    CHECK(seen == "ASB");
    CHECK(test_util::wait_child(pid).ok());
}

TEST_CASE("a deferred SIGINT with the default action ends the process only after the guard",
          "[uninterruptible][multiprocess]")
{
    int order[2];
    REQUIRE(::pipe2(order, O_CLOEXEC) == 0);
    test_util::event inside, sent;
    const pid_t pid = test_util::fork_child([&] {
        ::close(order[0]);
        g_order_fd = order[1];
        ::signal(SIGINT, SIG_DFL); // the test framework's handler is not what a program has
        {
            ndshm::uninterruptible guard;
            inside.set();
            sent.wait();
            mark('A'); // the critical section completes
        }
        mark('B'); // never reached: SIGINT terminates the process as the guard ends
        return 0;
    });
    ::close(order[1]);
    REQUIRE(inside.wait() == 1);
    REQUIRE(::kill(pid, SIGINT) == 0);
    sent.set();
    const std::string seen = read_all(order[0]);
    ::close(order[0]);
    CHECK(seen == "A");
    const auto st = test_util::wait_child(pid);
    CHECK_FALSE(st.exited);
    CHECK(st.signal == SIGINT);
}
