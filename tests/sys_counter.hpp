// The tests' hold on ndshm's system-call table (detail/sys.hpp): sys_patch puts the table back at scope
// end, so a test may replace entries; count_syscalls forwards every call to the real table and counts
// it, so that a test can say that a hot path maps nothing, opens nothing and wakes nobody.
#ifndef NDSHM_TESTS_SYS_COUNTER_HPP
#define NDSHM_TESTS_SYS_COUNTER_HPP

#include <ndshm/detail/sys.hpp>

#include <linux/futex.h>

#include <cstdint>

namespace test_util {

/// Puts the system-call table back as it was when the patch was made, at scope end: replace entries
/// of ndshm::detail::sys() freely while it lives.
class sys_patch {
public:
    sys_patch() : m_saved(ndshm::detail::sys()) {}
    sys_patch(const sys_patch&) = delete;
    sys_patch& operator=(const sys_patch&) = delete;
    ~sys_patch() { ndshm::detail::sys() = m_saved; }

private:
    ndshm::detail::sys_table m_saved;
};

struct sys_counts {
    long open = 0;     // shm_open, openat
    long map = 0;      // mmap, munmap, madvise
    long reserve = 0;  // posix_fallocate, fallocate, ftruncate
    long stat = 0;     // fstat, fstatat, fstatfs, fstatvfs, pread
    long unlink = 0;   // shm_unlink, unlinkat
    long liveness = 0; // kill, read (of /proc)
    long wake = 0;     // FUTEX_WAKE
    long wait = 0;     // FUTEX_WAIT
    long total() const { return open + map + reserve + stat + unlink + liveness + wake + wait; }
};

inline sys_counts& counted() noexcept
{
    static sys_counts c;
    return c;
}

inline ndshm::detail::sys_table& real_sys() noexcept
{
    static ndshm::detail::sys_table t = ndshm::detail::sys();
    return t;
}

/// Installs the counting table for its scope (one at a time, in one thread of one process).
class count_syscalls {
    sys_patch m_restore; // saved before the constructor patches the table, put back by the destructor

public:
    count_syscalls()
    {
        namespace d = ndshm::detail;
        real_sys() = d::sys();
        counted() = sys_counts{};
        d::sys_table& t = d::sys();
        t.shm_open = [](const char* n, int f, mode_t m) { return ++counted().open, real_sys().shm_open(n, f, m); };
        t.openat = [](int dir, const char* n, int f, mode_t m) {
            return ++counted().open, real_sys().openat(dir, n, f, m);
        };
        t.mmap = [](void* a, std::size_t n, int p, int f, int fd, off_t o) {
            return ++counted().map, real_sys().mmap(a, n, p, f, fd, o);
        };
        t.munmap = [](void* a, std::size_t n) { return ++counted().map, real_sys().munmap(a, n); };
        t.madvise = [](void* a, std::size_t n, int adv) { return ++counted().map, real_sys().madvise(a, n, adv); };
        t.posix_fallocate = [](int fd, off_t o, off_t n) {
            return ++counted().reserve, real_sys().posix_fallocate(fd, o, n);
        };
        t.fallocate = [](int fd, int mode, off_t o, off_t n) {
            return ++counted().reserve, real_sys().fallocate(fd, mode, o, n);
        };
        t.ftruncate = [](int fd, off_t n) { return ++counted().reserve, real_sys().ftruncate(fd, n); };
        t.fstat = [](int fd, struct stat* st) { return ++counted().stat, real_sys().fstat(fd, st); };
        t.fstatat = [](int dir, const char* n, struct stat* st, int f) {
            return ++counted().stat, real_sys().fstatat(dir, n, st, f);
        };
        t.pread = [](int fd, void* b, std::size_t n, off_t o) {
            return ++counted().stat, real_sys().pread(fd, b, n, o);
        };
        t.shm_unlink = [](const char* n) { return ++counted().unlink, real_sys().shm_unlink(n); };
        t.unlinkat = [](int dir, const char* n, int f) { return ++counted().unlink, real_sys().unlinkat(dir, n, f); };
        t.kill = [](pid_t pid, int sig) { return ++counted().liveness, real_sys().kill(pid, sig); };
        t.read = [](int fd, void* b, std::size_t n) { return ++counted().liveness, real_sys().read(fd, b, n); };
        t.futex = [](std::uint32_t* w, int op, std::uint32_t v, const struct timespec* ts) {
            if ((op & FUTEX_CMD_MASK) == FUTEX_WAKE) {
                ++counted().wake;
            } else {
                ++counted().wait;
            }
            return real_sys().futex(w, op, v, ts);
        };
    }
    count_syscalls(const count_syscalls&) = delete;
    count_syscalls& operator=(const count_syscalls&) = delete;
    ~count_syscalls() = default;
    const sys_counts& counts() const { return counted(); }
    void reset() { counted() = sys_counts{}; }
};

} // namespace test_util

#endif
