/// @file detail/sys.hpp
/// Every system call ndshm makes goes through the table returned by `sys()`, so that a test can
/// replace one entry and make any step of create, attach, unlink or free_all fail with the errno it
/// chooses (ENOSPC, EACCES, EMFILE, ENOMEM, EINTR, ...). The wrappers below retry EINTR where the call
/// had no effect, and report failures as errno values instead of throwing.
#ifndef NDSHM_DETAIL_SYS_HPP
#define NDSHM_DETAIL_SYS_HPP

#include <cerrno>
#include <cstddef>
#include <cstdio> // renameat2 (glibc >= 2.28)

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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
} // namespace sys_default

/// The process-wide table of system calls.
inline sys_table& sys() noexcept
{
    static sys_table table{
        sys_default::shm_open,  sys_default::shm_unlink,      sys_default::openat,  sys_default::unlinkat,
        sys_default::ftruncate, sys_default::posix_fallocate, sys_default::fstat,   sys_default::pread,
        sys_default::fstatvfs,  sys_default::fchmod,          sys_default::mmap,    sys_default::munmap,
        sys_default::close,     sys_default::opendir,         sys_default::readdir, sys_default::closedir,
        sys_default::fstatat,   sys_default::pwrite,          sys_default::fsync,   sys_default::renameat2,
        sys_default::flock,     sys_default::madvise};
    return table;
}

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
