// Helpers for the tools area's tests (inspect, tool, crash, fault, stress, security): temporary
// directories, raw segment bytes, children that must not outlive a failed test, running a program with
// its output captured, and counting this process's mappings.
#ifndef NDSHM_TESTS_TOOLS_UTIL_HPP
#define NDSHM_TESTS_TOOLS_UTIL_HPP

#include <ndshm/ndshm.hpp>

#include "test_util.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace tools_util {

/// A segment name for this test process: ndshm_test_<tag>_<pid>_<n>.
inline std::string test_name(const std::string& tag)
{
    static int counter = 0;
    return "ndshm_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

/// A fresh directory (for the directory backend), removed with its contents at scope end.
struct temp_dir {
    std::string path;
    temp_dir()
    {
        char tmpl[] = "/tmp/ndshm_test_dir_XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path = tmpl;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
    ndshm::options opts() const
    {
        ndshm::options o;
        o.directory = path;
        return o;
    }
};

/// Removes /dev/shm/<name> at scope end, whatever the test did (nothing for an empty name).
struct shm_guard {
    std::string name;
    explicit shm_guard(std::string n) : name(std::move(n)) {}
    shm_guard(const shm_guard&) = delete;
    shm_guard& operator=(const shm_guard&) = delete;
    ~shm_guard()
    {
        if (!name.empty()) {
            (void)::shm_unlink(("/" + name).c_str());
        }
    }
};

inline std::vector<unsigned char> read_file(const std::string& path)
{
    std::ifstream f(path, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), {});
}

inline void write_file(const std::string& path, const std::vector<unsigned char>& bytes, mode_t mode = 0600)
{
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        throw std::runtime_error("cannot create " + path);
    }
    const bool ok = bytes.empty() || ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    ::fchmod(fd, mode);
    ::close(fd);
    if (!ok) {
        throw std::runtime_error("cannot write " + path);
    }
}

inline bool file_exists(const std::string& path)
{
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

/// The bytes of a valid ndshm array segment of n float64 values 0, 1, 2, ... (made by ndshm itself).
inline std::vector<unsigned char> array_bytes(std::size_t n, bool persisted = false)
{
    temp_dir d;
    auto a = ndshm::shared_ndarray<double>::create({n}, d.opts());
    for (std::size_t i = 0; i < n; ++i) {
        a(i) = static_cast<double>(i);
    }
    if (persisted) {
        a.persist();
    }
    return read_file(d / a.name());
}

/// Offset of the trailer in the bytes of an ndshm array segment (always its last 256 bytes).
inline std::size_t trailer_at(const std::vector<unsigned char>& bytes) { return bytes.size() - 256; }

/// Applies f to the trailer of an ndshm segment's bytes.
inline void patch_trailer(std::vector<unsigned char>& bytes, const std::function<void(ndshm::detail::trailer&)>& f)
{
    if (bytes.size() < sizeof(ndshm::detail::trailer)) {
        throw std::runtime_error("patch_trailer: fewer bytes than a trailer");
    }
    ndshm::detail::trailer t;
    std::memcpy(&t, bytes.data() + trailer_at(bytes), sizeof t);
    f(t);
    std::memcpy(bytes.data() + trailer_at(bytes), &t, sizeof t);
}

/// A pid that belonged to a process that has exited and was reaped.
inline pid_t dead_pid()
{
    const pid_t pid = test_util::fork_child([] { return 0; });
    (void)test_util::wait_child(pid);
    return pid;
}

/// A forked child that is killed (SIGKILL) and reaped at scope end if it still runs, so that a failed
/// test never leaves a blocked child behind.
class child_guard {
public:
    explicit child_guard(pid_t pid) : m_pid(pid) {}
    child_guard(const child_guard&) = delete;
    child_guard& operator=(const child_guard&) = delete;
    ~child_guard()
    {
        if (m_pid > 0) {
            ::kill(m_pid, SIGKILL);
            (void)test_util::wait_child(m_pid);
        }
    }
    pid_t pid() const { return m_pid; }
    /// Kills the child with SIGKILL and reaps it.
    test_util::exit_status kill9()
    {
        ::kill(m_pid, SIGKILL);
        const auto st = test_util::wait_child(m_pid);
        m_pid = -1;
        return st;
    }
    test_util::exit_status wait()
    {
        const auto st = test_util::wait_child(m_pid);
        m_pid = -1;
        return st;
    }

private:
    pid_t m_pid;
};

/// Runs `body` in a child process with a PID namespace and a /proc of its own (it is pid 1 there), so
/// that /proc shows only the processes the body starts: gc's walk over /proc then sees every process
/// that could hold a segment, even on a machine that runs processes it may not examine. Files,
/// /dev/shm and the directory backends are shared with the test. Returns how the body ended (exit code
/// 77: the system refused the namespaces).
inline test_util::exit_status run_with_own_proc(const std::function<int()>& body)
{
    return test_util::run_child([&] {
        if (::unshare(CLONE_NEWNS | CLONE_NEWPID) != 0 ||
            ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
            return 77;
        }
        const auto st = test_util::run_child([&] {
            if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
                return 77;
            }
            return body();
        });
        return st.exited ? st.code : 128 + st.signal;
    });
}

/// Blocks the calling process until a signal kills it.
[[noreturn]] inline void block_forever()
{
    for (;;) {
        ::pause();
    }
}

/// How a program ran: its exit status and what it wrote.
struct program_result {
    test_util::exit_status status;
    std::string out;
    std::string err;
};

/// Runs a program (args[0] is its path) with stdout and stderr captured, in the environment of this
/// process minus NDSHM_DIR, plus `env` ("KEY=value" entries).
inline program_result run_program(const std::vector<std::string>& args, const std::vector<std::string>& env = {})
{
    temp_dir d;
    const std::string out = d / "out", err = d / "err";
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) {
        if (std::strncmp(*e, "NDSHM_DIR=", 10) != 0) {
            envs.emplace_back(*e);
        }
    }
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> argv, envp;
    for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    for (const auto& e : envs) {
        envp.push_back(const_cast<char*>(e.c_str()));
    }
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int r = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    ::posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        throw std::runtime_error("posix_spawn of " + args[0] + " failed");
    }
    program_result res;
    res.status = test_util::wait_child(pid);
    const auto o = read_file(out), e = read_file(err);
    res.out.assign(o.begin(), o.end());
    res.err.assign(e.begin(), e.end());
    return res;
}

/// Runs /usr/bin/python3 (NDSHM_TEST_PYTHON) on a script given inline, with arguments.
inline program_result run_python(const std::string& script, const std::vector<std::string>& args = {})
{
    std::vector<std::string> argv{NDSHM_TEST_PYTHON, "-c", script};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv);
}

/// Lines of /proc/self/maps that mention `text` (a segment name): this process's mappings of it.
inline int mappings_of(const std::string& text)
{
    std::ifstream f("/proc/self/maps");
    std::string line;
    int n = 0;
    while (std::getline(f, line)) {
        n += line.find(text) != std::string::npos ? 1 : 0;
    }
    return n;
}

/// Drops to uid and gid `id` (the tests run as root). Returns false if that is not possible.
inline bool become_uid(uid_t id) { return ::setgid(id) == 0 && ::setuid(id) == 0; }

} // namespace tools_util

#endif
