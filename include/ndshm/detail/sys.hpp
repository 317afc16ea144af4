/// @file detail/sys.hpp
/// Every system call ndshm makes that can fail goes through the table returned by `sys()`, so that a
/// test can replace one entry and make any step fail with the errno it chooses (ENOSPC, EACCES,
/// EMFILE, ENOMEM, EINTR, ENOSYS, EAGAIN, ...): segments, files, directory listings, the /proc reads
/// that tell whether a process lives, getrandom, futex waits, and the pool's fork, pipes and poll. The
/// wrappers below retry EINTR where the call had no effect, and report failures as errno values
/// instead of throwing. (Calls that cannot fail, such as getpid or clock_gettime, are made directly.)
#ifndef NDSHM_DETAIL_SYS_HPP
#define NDSHM_DETAIL_SYS_HPP

#ifdef _WIN32
// The same table, implemented over Win32 (segments in a directory, futexes over named semaphores).
#include "sys_win32.hpp"
#else

#include <cerrno>
#include <cstddef>
#include <cstdio> // renameat2 (glibc >= 2.28)

#include <cstdint>
#include <ctime>

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace ndshm::detail {

/// The system calls ndshm uses. Tests may swap entries (see tests/fault_test.cpp); the library never
/// changes them.
struct sys_table {
    int (*shm_open)(const char*, int, mode_t);
    int (*shm_unlink)(const char*);
    int (*openat)(int, const char*, int, mode_t);
    int (*unlinkat)(int, const char*, int);
    int (*ftruncate)(int, off_t);
    int (*posix_fallocate)(int, off_t, off_t); // returns the errno value instead of setting errno
    int (*fstat)(int, struct stat*);
    ssize_t (*pread)(int, void*, std::size_t, off_t);
    int (*fstatvfs)(int, struct statvfs*);
    int (*fchmod)(int, mode_t);
    void* (*mmap)(void*, std::size_t, int, int, int, off_t);
    int (*munmap)(void*, std::size_t);
    int (*close)(int);
    // Directory listing, for free_all and list_segments.
    DIR* (*opendir)(const char*);
    dirent* (*readdir)(DIR*); // end of stream: nullptr, errno untouched; error: nullptr, errno set
    int (*closedir)(DIR*);
    int (*fstatat)(int, const char*, struct stat*, int);
    // Files on disk (.npy and object files, the store): atomic writes and the store's load lock.
    ssize_t (*pwrite)(int, const void*, std::size_t, off_t);
    int (*fsync)(int);
    int (*renameat2)(int, const char*, int, const char*, unsigned); // flags: 0 or RENAME_NOREPLACE
    int (*flock)(int, int);
    int (*madvise)(void*, std::size_t, int); // prefaulting segments that are about to be written whole
    // Randomness for generated names; /proc reads and liveness checks; reserving sparse segments.
    ssize_t (*getrandom)(void*, std::size_t, unsigned);
    ssize_t (*read)(int, void*, std::size_t);
    int (*kill)(pid_t, int);
    int (*fallocate)(int, int, off_t, off_t); // -1 and errno, unlike posix_fallocate; never emulated
    int (*fstatfs)(int, struct statfs*);
    // Locks and wake-ups in shared memory: FUTEX_WAIT / FUTEX_WAKE on a shared 32-bit word.
    long (*futex)(std::uint32_t*, int, std::uint32_t, const struct timespec*);
    // The fork pool: its workers, their pipes and the parent's wait for them.
    pid_t (*fork)();
    int (*pipe2)(int*, int);
    int (*fcntl)(int, int, int);
    ssize_t (*write)(int, const void*, std::size_t);
    int (*poll)(struct pollfd*, nfds_t, int);
    pid_t (*waitpid)(pid_t, int*, int);
    // Pinning and flushing an array's pages.
    int (*mlock)(const void*, std::size_t);
    int (*munlock)(const void*, std::size_t);
    int (*msync)(void*, std::size_t, int);
};

namespace sys_default {
// glibc declares some of these with extra attributes or as variadic (openat); thin wrappers give the
// table plain function types.
inline int shm_open(const char* n, int f, mode_t m) { return ::shm_open(n, f, m); }
inline int shm_unlink(const char* n) { return ::shm_unlink(n); }
inline int openat(int d, const char* n, int f, mode_t m) { return ::openat(d, n, f, m); }
inline int unlinkat(int d, const char* n, int f) { return ::unlinkat(d, n, f); }
inline int ftruncate(int fd, off_t n) { return ::ftruncate(fd, n); }
inline int posix_fallocate(int fd, off_t o, off_t n) { return ::posix_fallocate(fd, o, n); }
inline int fstat(int fd, struct stat* st) { return ::fstat(fd, st); }
inline ssize_t pread(int fd, void* buf, std::size_t n, off_t off) { return ::pread(fd, buf, n, off); }
inline int fstatvfs(int fd, struct statvfs* st) { return ::fstatvfs(fd, st); }
inline int fchmod(int fd, mode_t m) { return ::fchmod(fd, m); }
inline void* mmap(void* a, std::size_t n, int p, int f, int fd, off_t o) { return ::mmap(a, n, p, f, fd, o); }
inline int munmap(void* a, std::size_t n) { return ::munmap(a, n); }
inline int close(int fd) { return ::close(fd); }
inline DIR* opendir(const char* p) { return ::opendir(p); }
inline dirent* readdir(DIR* d) { return ::readdir(d); }
inline int closedir(DIR* d) { return ::closedir(d); }
inline int fstatat(int d, const char* n, struct stat* st, int f) { return ::fstatat(d, n, st, f); }
inline ssize_t pwrite(int fd, const void* b, std::size_t n, off_t o) { return ::pwrite(fd, b, n, o); }
inline int fsync(int fd) { return ::fsync(fd); }
inline int renameat2(int od, const char* o, int nd, const char* n, unsigned f) { return ::renameat2(od, o, nd, n, f); }
inline int flock(int fd, int op) { return ::flock(fd, op); }
inline int madvise(void* a, std::size_t n, int advice) { return ::madvise(a, n, advice); }
inline ssize_t getrandom(void* b, std::size_t n, unsigned f) { return ::getrandom(b, n, f); }
inline ssize_t read(int fd, void* b, std::size_t n) { return ::read(fd, b, n); }
inline int kill(pid_t pid, int sig) { return ::kill(pid, sig); }
inline int fallocate(int fd, int mode, off_t o, off_t n) { return ::fallocate(fd, mode, o, n); }
inline int fstatfs(int fd, struct statfs* st) { return ::fstatfs(fd, st); }
inline long futex(std::uint32_t* word, int op, std::uint32_t val, const struct timespec* timeout)
{
    return ::syscall(SYS_futex, word, op, val, timeout, nullptr, 0);
}
inline pid_t fork() { return ::fork(); }
inline int pipe2(int* fds, int flags) { return ::pipe2(fds, flags); }
inline int fcntl(int fd, int cmd, int arg) { return ::fcntl(fd, cmd, arg); }
inline ssize_t write(int fd, const void* b, std::size_t n) { return ::write(fd, b, n); }
inline int poll(struct pollfd* fds, nfds_t n, int timeout) { return ::poll(fds, n, timeout); }
inline pid_t waitpid(pid_t pid, int* status, int options) { return ::waitpid(pid, status, options); }
inline int mlock(const void* a, std::size_t n) { return ::mlock(a, n); }
inline int munlock(const void* a, std::size_t n) { return ::munlock(a, n); }
inline int msync(void* a, std::size_t n, int flags) { return ::msync(a, n, flags); }
} // namespace sys_default

/// The process-wide table of system calls.
inline sys_table& sys() noexcept
{
    static sys_table table{
        sys_default::shm_open,  sys_default::shm_unlink,      sys_default::openat,    sys_default::unlinkat,
        sys_default::ftruncate, sys_default::posix_fallocate, sys_default::fstat,     sys_default::pread,
        sys_default::fstatvfs,  sys_default::fchmod,          sys_default::mmap,      sys_default::munmap,
        sys_default::close,     sys_default::opendir,         sys_default::readdir,   sys_default::closedir,
        sys_default::fstatat,   sys_default::pwrite,          sys_default::fsync,     sys_default::renameat2,
        sys_default::flock,     sys_default::madvise,         sys_default::getrandom, sys_default::read,
        sys_default::kill,      sys_default::fallocate,       sys_default::fstatfs,   sys_default::futex,
        sys_default::fork,      sys_default::pipe2,           sys_default::fcntl,     sys_default::write,
        sys_default::poll,      sys_default::waitpid,         sys_default::mlock,     sys_default::munlock,
        sys_default::msync};
    return table;
}

/// The directory of the listing `d`, for the *at calls.
inline int dir_fd(DIR* d) noexcept { return ::dirfd(d); }

/// The characters that separate a path's components.
inline constexpr const char* path_separators = "/";

/// The page size (the unit of mappings' offsets).
inline std::size_t page_size() noexcept { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }

/// This thread's id (the lock records it).
inline std::uint32_t current_tid() noexcept { return static_cast<std::uint32_t>(::syscall(SYS_gettid)); }

/// The effective uid.
inline uid_t current_uid() noexcept { return ::geteuid(); }

} // namespace ndshm::detail
#endif // _WIN32

namespace ndshm::detail {

/// Calls f until it stops failing with EINTR; returns its result (errno is left as f set it).
template <class F>
inline auto retry_eintr(F f)
{
    for (;;) {
        auto r = f();
        if (!(r == -1 && errno == EINTR)) {
            return r;
        }
    }
}

/// A file descriptor that closes itself. Move-only; the destructor never throws.
class fd_guard {
public:
    fd_guard() = default;
    explicit fd_guard(int fd) noexcept : m_fd(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    fd_guard(fd_guard&& o) noexcept : m_fd(o.m_fd) { o.m_fd = -1; }
    fd_guard& operator=(fd_guard&& o) noexcept
    {
        if (this != &o) {
            reset();
            m_fd = o.m_fd;
            o.m_fd = -1;
        }
        return *this;
    }
    ~fd_guard() { reset(); }
    int get() const noexcept { return m_fd; }
    void reset() noexcept
    {
        if (m_fd >= 0) {
            // close() must not be retried on EINTR on Linux: the descriptor is already released.
            (void)sys().close(m_fd);
            m_fd = -1;
        }
    }

private:
    int m_fd = -1;
};

} // namespace ndshm::detail

#endif
