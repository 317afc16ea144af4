// The per-array lock: processes that update one shared array take turns through the lock in its
// segment, and a holder that dies does not block anyone: the next locker is told and repairs.
#include <ndshm/ndshm.hpp>
#include <ndshm/lock.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <mutex>
#include <system_error>
#include <vector>

namespace {

constexpr int processes = 4, increments = 2000;

pid_t fork_or_throw()
{
    std::fflush(stdout);
    const pid_t pid = ::fork();
    if (pid < 0) {
        throw std::system_error(errno, std::generic_category(), "fork");
    }
    return pid;
}

int run()
{
    // [readme]
    // a(0): a counter; a(1): a flag that says an update is in progress.
    auto a = ndshm::shared_ndarray<std::int64_t>::create({2});

    std::vector<pid_t> children;
    for (int p = 0; p < processes; ++p) {
        const pid_t pid = fork_or_throw();
        if (pid == 0) {
            auto mine = ndshm::shared_ndarray<std::int64_t>::attach(a.name());
            ndshm::array_lock lock(mine); // the same lock in every process
            for (int k = 0; k < increments; ++k) {
                std::lock_guard<ndshm::array_lock> hold(lock);
                mine(0) += 1; // a read-modify-write that would lose updates without the lock
            }
            ::_exit(0);
        }
        children.push_back(pid);
    }
    for (const pid_t pid : children) {
        ::waitpid(pid, nullptr, 0);
    }

    // One more process dies while it holds the lock, in the middle of an update.
    const pid_t crashing = fork_or_throw();
    if (crashing == 0) {
        ndshm::array_lock lock(a);
        lock.lock();
        a(1) = 1;    // "update in progress"
        ::_exit(70); // gone without unlocking
    }
    ::waitpid(crashing, nullptr, 0);

    ndshm::array_lock lock(a);
    std::lock_guard<ndshm::array_lock> hold(lock); // does not hang on the dead holder
    if (lock.previous_owner_died()) {
        std::printf("the previous holder died holding the lock; repairing (in progress flag: %lld)\n",
                    static_cast<long long>(a(1)));
        a(1) = 0;
    }
    // [readme-end]

    const long long expected = static_cast<long long>(processes) * increments;
    std::printf("counter: %lld (expected %lld)\n", static_cast<long long>(a(0)), expected);
    return a(0) == expected && a(1) == 0 && lock.previous_owner_died() ? 0 : 1;
}

} // namespace

int main()
{
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
