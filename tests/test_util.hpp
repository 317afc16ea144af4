// Helpers for ndshm's multi-process tests: fork a child and learn how it ended, pipe-based events
// (processes synchronise on these, never on sleeps), spawning programs, and counting fds and segments.
#ifndef NDSHM_TESTS_TEST_UTIL_HPP
#define NDSHM_TESTS_TEST_UTIL_HPP

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

extern char** environ;

namespace test_util {

/// How a child process ended.
struct exit_status {
    bool exited = false;
    int code = -1;  ///< exit code if exited
    int signal = 0; ///< terminating signal otherwise
    bool ok() const { return exited && code == 0; }
};

inline exit_status wait_child(pid_t pid)
{
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            throw std::runtime_error("waitpid failed");
        }
    }
    exit_status s;
    if (WIFEXITED(status)) {
        s.exited = true;
        s.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        s.signal = WTERMSIG(status);
    }
    return s;
}

/// Forks; the child runs `body` and exits with its return value (an exception: 99, after printing it).
/// The child leaves with _exit, so it runs no destructors of the parent's state beyond its own scope.
inline pid_t fork_child(const std::function<int()>& body)
{
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
        int code = 98;
        try {
            code = body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: uncaught exception: %s\n", e.what());
            code = 99;
        } catch (...) {
            code = 99;
        }
        std::fflush(nullptr);
        ::_exit(code);
    }
    return pid;
}

inline exit_status run_child(const std::function<int()>& body) { return wait_child(fork_child(body)); }

/// Stops a child with SIGSTOP and returns once the kernel reports it stopped (waitpid with WUNTRACED):
/// an event, not a guess about time.
inline bool stop_child(pid_t pid)
{
    if (::kill(pid, SIGSTOP) != 0) {
        return false;
    }
    int status = 0;
    while (::waitpid(pid, &status, WUNTRACED) < 0) {
        if (errno != EINTR) {
            return false;
        }
    }
    return WIFSTOPPED(status);
}

/// Resumes a child stopped by stop_child, and returns once the kernel reports it running (WCONTINUED).
inline bool continue_child(pid_t pid)
{
    if (::kill(pid, SIGCONT) != 0) {
        return false;
    }
    int status = 0;
    while (::waitpid(pid, &status, WCONTINUED) < 0) {
        if (errno != EINTR) {
            return false;
        }
    }
    return WIFCONTINUED(status);
}

/// Milliseconds that `f` took (to check that calls return within their documented bounds).
template <class F>
double elapsed_ms(F&& f)
{
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/// A one-shot event between processes, over a pipe: `set()` in one, `wait()` in the other.
class event {
public:
    event()
    {
        if (::pipe2(m_fd, O_CLOEXEC) != 0) {
            throw std::runtime_error("pipe failed");
        }
    }
    event(const event&) = delete;
    event& operator=(const event&) = delete;
    ~event()
    {
        ::close(m_fd[0]);
        ::close(m_fd[1]);
    }
    void set(char value = 1) const { (void)!::write(m_fd[1], &value, 1); }
    /// Blocks until set() was called; returns the value, or 0 if every writer is gone.
    char wait() const
    {
        char c = 0;
        for (;;) {
            const ssize_t r = ::read(m_fd[0], &c, 1);
            if (r == 1) {
                return c;
            }
            if (r == 0 || errno != EINTR) {
                return 0;
            }
        }
    }

private:
    int m_fd[2];
};

/// Runs a program to completion (argv[0] is its path) and returns how it ended.
inline exit_status spawn_wait(const std::vector<std::string>& args)
{
    std::vector<char*> argv;
    for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
        throw std::runtime_error("posix_spawn of " + args[0] + " failed");
    }
    return wait_child(pid);
}

/// Number of open file descriptors of this process.
inline int open_fds()
{
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    while (const dirent* e = ::readdir(d)) {
        n += e->d_name[0] != '.' ? 1 : 0;
    }
    ::closedir(d);
    return n - 1; // the directory stream's own fd
}

/// Names in /dev/shm that start with `prefix`.
inline std::vector<std::string> shm_entries(const std::string& prefix = "ndshm")
{
    std::vector<std::string> names;
    DIR* d = ::opendir("/dev/shm");
    while (const dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n.rfind(prefix, 0) == 0) {
            names.push_back(n);
        }
    }
    ::closedir(d);
    return names;
}

/// True if a file exists at /dev/shm/<name>.
inline bool shm_exists(const std::string& name) { return ::access(("/dev/shm/" + name).c_str(), F_OK) == 0; }

/// Drops to user `nobody` (the test suite runs as root). Returns false if that is not possible.
inline bool become_nobody()
{
    const passwd* pw = ::getpwnam("nobody");
    if (pw == nullptr) {
        return false;
    }
    return ::setgid(pw->pw_gid) == 0 && ::setuid(pw->pw_uid) == 0;
}

template <class T>
struct is_complex : std::false_type {
};
template <class T>
struct is_complex<std::complex<T>> : std::true_type {
};

/// The value the NumPy interop scripts (tests/python/numpy_rw.py, objects_npy.py) put at, or expect
/// at, C-order flat index k: distinct per position and exact in every dtype.
template <class T>
T pattern_value(std::size_t k)
{
    if constexpr (std::is_same_v<T, bool>) {
        return k % 3 == 0;
    } else if constexpr (is_complex<T>::value) {
        using real = typename T::value_type;
        return T(static_cast<real>(static_cast<double>(k) / 2 - 3), static_cast<real>(static_cast<double>(k) / 4 + 1));
    } else if constexpr (std::is_floating_point_v<T>) {
        return static_cast<T>(static_cast<double>(k) / 2 - 3);
    } else if constexpr (std::is_signed_v<T>) {
        return static_cast<T>(static_cast<long long>((7 * k + 3) % 100) - 50);
    } else {
        return static_cast<T>((7 * k + 3) % 100);
    }
}

} // namespace test_util

#endif
