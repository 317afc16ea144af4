/// @file detail/sys_win32_posix.hpp
/// The POSIX vocabulary of ndshm's system-call table on Windows (see detail/sys_win32.hpp): the types
/// (off_t, ssize_t, uid_t, struct stat, statvfs, statfs), the flag and errno constants the C runtime
/// lacks, Win32 errors as errno values, and UTF-8 paths as UTF-16.
#ifndef NDSHM_DETAIL_SYS_WIN32_POSIX_HPP
#define NDSHM_DETAIL_SYS_WIN32_POSIX_HPP

#ifndef NOMINMAX
#define NOMINMAX // std::min and std::max must stay usable in every header that follows
#endif
#include <windows.h>

#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>

namespace ndshm {
// errno values the C runtime lacks (Linux's numbers), seen from namespace ndshm and its detail.
inline constexpr int ESTALE = 116;
inline constexpr int EDQUOT = 122;
} // namespace ndshm

namespace ndshm::detail {

using uid_t = std::uint32_t;
using ssize_t = std::ptrdiff_t;
using off_t = std::int64_t; // the C runtime's off_t is 32 bits wide

/// What fstat reports (POSIX field names; the C runtime's struct stat has a 16-bit inode and a 32-bit
/// size, too small for either).
struct stat {
    std::uint64_t st_dev = 0;
    std::uint64_t st_ino = 0;
    unsigned st_mode = 0;
    unsigned st_nlink = 0;
    uid_t st_uid = 0;
    std::int64_t st_size = 0;
    std::int64_t st_blocks = 0; ///< 512-byte units; Windows files have no holes unless made sparse
    struct timespec st_mtim {};
};
struct statvfs {
    unsigned long long f_bavail = 0;
    unsigned long long f_frsize = 1;
    unsigned long long f_bsize = 1;
};
struct statfs {
    unsigned long long f_type = 0; ///< 0: a disk file system, never memory-backed like tmpfs
};

// open(2), *at(2), mmap(2), flock(2), futex(2) constants ndshm uses that the C runtime lacks. The
// open flags take bits the runtime's _O_* values leave free; O_CLOEXEC is its _O_NOINHERIT.
inline constexpr int O_CLOEXEC = _O_NOINHERIT;
inline constexpr int O_NOFOLLOW = 0x01000000;
inline constexpr int O_NONBLOCK = 0x02000000;
inline constexpr int O_DIRECTORY = 0x04000000;
inline constexpr int AT_FDCWD = -100;
inline constexpr int AT_SYMLINK_NOFOLLOW = 0x100;
inline constexpr int AT_REMOVEDIR = 0x200;
inline constexpr int PROT_NONE = 0;
inline constexpr int PROT_READ = 1;
inline constexpr int PROT_WRITE = 2;
inline constexpr int MAP_SHARED = 1;
inline constexpr int MAP_PRIVATE = 2;
inline constexpr int MAP_ANONYMOUS = 0x20;
inline void* const MAP_FAILED = reinterpret_cast<void*>(~std::uintptr_t(0));
inline constexpr int MS_SYNC = 4;
inline constexpr int MADV_NORMAL = 0;
inline constexpr int MADV_WILLNEED = 3;
inline constexpr int MADV_DONTNEED = 4;
inline constexpr int MADV_POPULATE_WRITE = 23;
inline constexpr int FALLOC_FL_KEEP_SIZE = 1;
inline constexpr int FUTEX_WAIT = 0;
inline constexpr int FUTEX_WAKE = 1;
inline constexpr int LOCK_SH = 1;
inline constexpr int LOCK_EX = 2;
inline constexpr int LOCK_NB = 4;
inline constexpr int LOCK_UN = 8;
inline constexpr unsigned RENAME_NOREPLACE = 1;

/// errno for a Win32 error code.
inline int errno_of_win32(DWORD e) noexcept
{
    switch (e) {
    case ERROR_SUCCESS:
        return 0;
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_PATHNAME:
        return ENOENT;
    case ERROR_FILE_EXISTS:
    case ERROR_ALREADY_EXISTS:
        return EEXIST;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
    case ERROR_PRIVILEGE_NOT_HELD:
    case ERROR_DELETE_PENDING:
    case ERROR_WRITE_PROTECT:
        return EACCES;
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL:
    case ERROR_COMMITMENT_LIMIT:
        return ENOSPC;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_NO_SYSTEM_RESOURCES:
    case ERROR_COMMITMENT_MINIMUM:
        return ENOMEM;
    case ERROR_TOO_MANY_OPEN_FILES:
        return EMFILE;
    case ERROR_INVALID_HANDLE:
        return EBADF;
    case ERROR_NOT_SUPPORTED:
    case ERROR_CALL_NOT_IMPLEMENTED:
        return ENOSYS;
    case ERROR_DIR_NOT_EMPTY:
        return ENOTEMPTY;
    case ERROR_DIRECTORY:
        return ENOTDIR;
    case ERROR_FILENAME_EXCED_RANGE:
        return ENAMETOOLONG;
    case ERROR_IO_DEVICE:
    case ERROR_CRC:
        return EIO;
    case ERROR_LOCK_FAILED:
    case ERROR_IO_PENDING:
        return EWOULDBLOCK;
    default:
        return EINVAL;
    }
}

/// Sets errno from GetLastError() and returns -1.
inline int fail_win32() noexcept
{
    errno = errno_of_win32(::GetLastError());
    return -1;
}

inline int fail_errno(int e) noexcept
{
    errno = e;
    return -1;
}

/// UTF-16 of a UTF-8 path, '/' turned into '\\'.
inline std::wstring wide_path(const std::string& s)
{
    std::wstring w;
    if (s.empty()) {
        return w;
    }
    const int n = ::MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
    w.resize(static_cast<std::size_t>(n > 0 ? n : 0));
    if (n > 0) {
        (void)::MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), &w[0], n);
    }
    for (auto& c : w) {
        if (c == L'/') {
            c = L'\\';
        }
    }
    return w;
}

inline std::string narrow(const wchar_t* w)
{
    const int n = ::WideCharToMultiByte(CP_UTF8, 0, w, -1, nullptr, 0, nullptr, nullptr);
    if (n <= 1) {
        return std::string();
    }
    std::string s(static_cast<std::size_t>(n - 1), '\0');
    (void)::WideCharToMultiByte(CP_UTF8, 0, w, -1, &s[0], n, nullptr, nullptr);
    return s;
}

} // namespace ndshm::detail

#endif
