/// @file detail/sys_win32.hpp
/// The Win32 implementation of ndshm's platform interface (detail/sys.hpp): the same table of system
/// calls, with the same POSIX-shaped signatures and errno results, implemented over Win32. Everything
/// above the table (segments, files, the store, locks, the queue and the channel) is the same code on
/// both systems, and a test can replace an entry and inject a failure on Windows as on Linux.
///
/// What each entry means here:
/// - Segments live in a directory: POSIX shared memory names (shm_open("/NAME"), and /dev/shm/NAME where
///   the code lists or checks segments) are files in the default segment directory,
///   `%LOCALAPPDATA%\ndshm` (`NDSHM_SHM_DIR` overrides it); `NDSHM_DIR` / options::directory select
///   another directory exactly as on Linux. A file keeps the Linux lifetime (a name stays until it is
///   unlinked, persist/unlink/free_session/free_all/gc mean the same) and every single-array segment is
///   a valid .npy file that NumPy opens in place. A named section (CreateFileMapping without a file)
///   would vanish with its last handle, could not be listed, could not outlive its creator for persist()
///   and would not be a file NumPy can open: see docs/windows.md.
/// - Files are opened with CreateFileW sharing read, write and delete (so that a mapped segment can be
///   unlinked, as on Linux) and, when created, with a security descriptor that grants access to the
///   creating user only (the equivalent of mode 0600; other mode bits have no Win32 meaning). The
///   descriptor is a C runtime descriptor over the handle (_open_osfhandle), so close() is _close().
/// - fstat reports a file's identity (volume serial number and 64-bit file index, folded into st_dev
///   and st_ino), its size, and as st_uid the current user's tag (current_uid()) if the file's owner
///   SID is the user's SID, another value otherwise: the owner check compares SIDs, not tags.
/// - mmap maps a view of a file mapping object over the file; munmap unmaps a whole view.
/// - getrandom is BCryptGenRandom (the system-preferred RNG; link bcrypt).
/// - kill(pid, 0) is OpenProcess (or OpenThread: a lock records a thread id) + the exit code.
/// - futex: WaitOnAddress only works inside one process, so a futex word in a shared mapping is keyed
///   by its file's identity and offset; waiters sleep on a named semaphore of that key and count
///   themselves in a named counter, and a wake releases at most that many. Every word waited on this way
///   is re-checked by its caller, so the rare spare release (a waiter timed out after it was released,
///   or was killed while counted) costs one spurious wake-up, never a lost one.
/// - flock is LockFileEx on one byte far beyond any data, so that the lock never blocks reads or writes.
/// - There is no fork(): the table has no pool entries, and fork_pool is refused at compile time.
///
/// The implementation, by concept: sys_win32_posix.hpp (the POSIX types, constants and errno values),
/// sys_win32_security.hpp (the user's SID, owner-only creation), sys_win32_files.hpp (segments and files
/// by name, directories), sys_win32_io.hpp (file contents and metadata, flock), sys_win32_mapping.hpp
/// (mmap and its kin), sys_win32_futex.hpp (futexes over named semaphores), sys_win32_process.hpp
/// (processes and liveness).
#ifndef NDSHM_DETAIL_SYS_WIN32_HPP
#define NDSHM_DETAIL_SYS_WIN32_HPP

#include "sys_win32_files.hpp"
#include "sys_win32_futex.hpp"
#include "sys_win32_io.hpp"
#include "sys_win32_mapping.hpp"
#include "sys_win32_posix.hpp" // windows.h
#include "sys_win32_process.hpp"
#include "sys_win32_security.hpp"

#include <bcrypt.h>
#include <aclapi.h>
#include <sddl.h>

#include <dirent.h>
#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace ndshm::detail {
namespace sys_win32 {

/// getrandom is BCryptGenRandom (the system-preferred RNG; link bcrypt).
inline ssize_t getrandom(void* b, std::size_t n, unsigned)
{
    const auto want = static_cast<ULONG>(std::min(n, max_transfer));
    const NTSTATUS s = ::BCryptGenRandom(nullptr, static_cast<PUCHAR>(b), want, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
    if (s < 0) {
        return fail_errno(EIO);
    }
    return static_cast<ssize_t>(want);
}

} // namespace sys_win32

/// The system calls ndshm uses on Windows (see the file comment). Tests may swap entries; the library
/// never changes them. The pool's entries (fork, pipes, poll, waitpid) do not exist here.
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
    DIR* (*opendir)(const char*);
    dirent* (*readdir)(DIR*);
    int (*closedir)(DIR*);
    int (*fstatat)(int, const char*, struct stat*, int);
    ssize_t (*pwrite)(int, const void*, std::size_t, off_t);
    int (*fsync)(int);
    int (*renameat2)(int, const char*, int, const char*, unsigned);
    int (*flock)(int, int);
    int (*madvise)(void*, std::size_t, int);
    ssize_t (*getrandom)(void*, std::size_t, unsigned);
    ssize_t (*read)(int, void*, std::size_t);
    int (*kill)(pid_t, int);
    int (*fallocate)(int, int, off_t, off_t);
    int (*fstatfs)(int, struct statfs*);
    long (*futex)(std::uint32_t*, int, std::uint32_t, const struct timespec*);
    ssize_t (*write)(int, const void*, std::size_t);
    int (*mlock)(const void*, std::size_t);
    int (*munlock)(const void*, std::size_t);
    int (*msync)(void*, std::size_t, int);
};

/// The process-wide table of system calls.
inline sys_table& sys() noexcept
{
    static sys_table table{sys_win32::shm_open,  sys_win32::shm_unlink,      sys_win32::openat,    sys_win32::unlinkat,
                           sys_win32::ftruncate, sys_win32::posix_fallocate, sys_win32::fstat,     sys_win32::pread,
                           sys_win32::fstatvfs,  sys_win32::fchmod,          sys_win32::mmap,      sys_win32::munmap,
                           sys_win32::close,     sys_win32::opendir,         sys_win32::readdir,   sys_win32::closedir,
                           sys_win32::fstatat,   sys_win32::pwrite,          sys_win32::fsync,     sys_win32::renameat2,
                           sys_win32::flock,     sys_win32::madvise,         sys_win32::getrandom, sys_win32::read,
                           sys_win32::kill,      sys_win32::fallocate,       sys_win32::fstatfs,   sys_win32::futex,
                           sys_win32::write,     sys_win32::mlock,           sys_win32::munlock,   sys_win32::msync};
    return table;
}

/// The directory of the listing `d`, for the *at calls (a pseudo descriptor, see sys_win32::dirs).
inline int dir_fd(DIR* d) noexcept
{
    std::lock_guard<std::mutex> g(sys_win32::dirs().mutex);
    const auto it = sys_win32::dirs().dirs.find(d);
    return it != sys_win32::dirs().dirs.end() ? it->second.first : -1;
}

/// The characters that separate a path's components.
inline constexpr const char* path_separators = "/\\";

} // namespace ndshm::detail

#endif
