/// @file detail/sys_win32_io.hpp
/// File contents and metadata on Windows (see detail/sys_win32.hpp): size and allocation (space is
/// reserved when a file grows), fstat (the file's identity, size and owner), reads and writes at an
/// offset or at the file position, the volume's free space, fsync, and flock (LockFileEx on one byte
/// far beyond any data, so that the lock never blocks reads or writes).
#ifndef NDSHM_DETAIL_SYS_WIN32_IO_HPP
#define NDSHM_DETAIL_SYS_WIN32_IO_HPP

#include "sys_win32_files.hpp"
#include "sys_win32_posix.hpp" // windows.h
#include "sys_win32_security.hpp"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>

namespace ndshm::detail::sys_win32 {

inline int ftruncate(int fd, off_t n)
{
    FILE_END_OF_FILE_INFO eof{};
    eof.EndOfFile.QuadPart = static_cast<LONGLONG>(n);
    return ::SetFileInformationByHandle(handle_of(fd), FileEndOfFileInfo, &eof, sizeof eof) ? 0 : fail_win32();
}

/// Sets the file's allocation to at least `end` bytes: the space is reserved now (ERROR_DISK_FULL
/// here, not on first touch). Returns 0 or an errno value.
inline int reserve_allocation(HANDLE h, std::int64_t end) noexcept
{
    FILE_STANDARD_INFO si{};
    if (!::GetFileInformationByHandleEx(h, FileStandardInfo, &si, sizeof si)) {
        return errno_of_win32(::GetLastError());
    }
    if (si.AllocationSize.QuadPart >= end) {
        return 0;
    }
    FILE_ALLOCATION_INFO ai{};
    ai.AllocationSize.QuadPart = end;
    if (::SetFileInformationByHandle(h, FileAllocationInfo, &ai, sizeof ai)) {
        return 0;
    }
    const DWORD e = ::GetLastError();
    // Wine implements no FileAllocationInfo; a file system that cannot take it (FAT on some drivers)
    // says ERROR_INVALID_PARAMETER. There the end of file is moved instead, which allocates on NTFS.
    if (e != ERROR_NOT_SUPPORTED && e != ERROR_CALL_NOT_IMPLEMENTED && e != ERROR_INVALID_PARAMETER &&
        e != ERROR_INVALID_FUNCTION) {
        return errno_of_win32(e);
    }
    if (si.EndOfFile.QuadPart >= end) {
        return 0;
    }
    FILE_END_OF_FILE_INFO eof{};
    eof.EndOfFile.QuadPart = end;
    return ::SetFileInformationByHandle(h, FileEndOfFileInfo, &eof, sizeof eof) ? 0 : errno_of_win32(::GetLastError());
}

inline int posix_fallocate(int fd, off_t o, off_t n)
{
    const HANDLE h = handle_of(fd);
    const std::int64_t end = static_cast<std::int64_t>(o) + static_cast<std::int64_t>(n);
    if (int e = reserve_allocation(h, end); e != 0) {
        return e;
    }
    FILE_STANDARD_INFO si{};
    if (!::GetFileInformationByHandleEx(h, FileStandardInfo, &si, sizeof si)) {
        return errno_of_win32(::GetLastError());
    }
    if (si.EndOfFile.QuadPart < end) {
        FILE_END_OF_FILE_INFO eof{};
        eof.EndOfFile.QuadPart = end;
        if (!::SetFileInformationByHandle(h, FileEndOfFileInfo, &eof, sizeof eof)) {
            return errno_of_win32(::GetLastError());
        }
    }
    return 0;
}

inline int fallocate(int fd, int, off_t o, off_t n)
{
    const int e = reserve_allocation(handle_of(fd), static_cast<std::int64_t>(o) + static_cast<std::int64_t>(n));
    return e == 0 ? 0 : fail_errno(e);
}

inline int fstat_handle(HANDLE h, struct stat* st) noexcept
{
    BY_HANDLE_FILE_INFORMATION fi{};
    if (!::GetFileInformationByHandle(h, &fi)) {
        return fail_win32();
    }
    *st = stat{};
    st->st_dev = fi.dwVolumeSerialNumber;
    st->st_ino = (std::uint64_t(fi.nFileIndexHigh) << 32 | fi.nFileIndexLow) + 1; // +1: 0 means unknown
    const bool dir = (fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0;
    st->st_mode = dir ? (_S_IFDIR | 0700u) : (_S_IFREG | 0600u);
    st->st_nlink = fi.nNumberOfLinks;
    st->st_size = static_cast<std::int64_t>(std::uint64_t(fi.nFileSizeHigh) << 32 | fi.nFileSizeLow);
    st->st_blocks = (st->st_size + 511) / 512;
    FILE_STANDARD_INFO si{};
    if (::GetFileInformationByHandleEx(h, FileStandardInfo, &si, sizeof si)) {
        st->st_blocks = std::max<std::int64_t>(st->st_blocks, (si.AllocationSize.QuadPart + 511) / 512);
    }
    // FILETIME: 100 ns since 1601; the Unix epoch is 11644473600 s later.
    const std::uint64_t t = std::uint64_t(fi.ftLastWriteTime.dwHighDateTime) << 32 | fi.ftLastWriteTime.dwLowDateTime;
    const std::uint64_t unix100 = t >= 116444736000000000ull ? t - 116444736000000000ull : 0;
    st->st_mtim.tv_sec = static_cast<time_t>(unix100 / 10000000u);
    st->st_mtim.tv_nsec = static_cast<long>(unix100 % 10000000u) * 100;
    st->st_uid = owned_by_current_user(h) ? current_uid() : (current_uid() ^ 0x40000000u);
    return 0;
}

inline int fstat(int fd, struct stat* st) { return fstat_handle(handle_of(fd), st); }

inline int fstatat(int dirfd, const char* path, struct stat* st, int flags)
{
    const std::string p = at_path(dirfd, path);
    if (p.empty()) {
        return fail_errno(EBADF);
    }
    if (p.rfind("/proc/", 0) == 0) {
        return fail_errno(ENOENT);
    }
    DWORD attrs = FILE_FLAG_BACKUP_SEMANTICS;
    if ((flags & AT_SYMLINK_NOFOLLOW) != 0) {
        attrs |= FILE_FLAG_OPEN_REPARSE_POINT;
    }
    HANDLE h = ::CreateFileW(wide_path(p).c_str(), READ_CONTROL | FILE_READ_ATTRIBUTES,
                             FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr, OPEN_EXISTING, attrs,
                             nullptr);
    if (h == INVALID_HANDLE_VALUE) {
        return fail_win32();
    }
    const int r = fstat_handle(h, st);
    const int e = errno;
    ::CloseHandle(h);
    errno = e;
    return r;
}

/// The most bytes one read or write (or getrandom) transfers: a larger request gets a short count, as
/// POSIX allows.
inline constexpr std::size_t max_transfer = 0x40000000u;

/// An OVERLAPPED that names the file offset `off`: a synchronous read or write there.
inline OVERLAPPED at_offset(off_t off) noexcept
{
    OVERLAPPED ov{};
    const auto o = static_cast<std::uint64_t>(off);
    ov.Offset = static_cast<DWORD>(o);
    ov.OffsetHigh = static_cast<DWORD>(o >> 32);
    return ov;
}

/// ReadFile of at most max_transfer bytes at `ov` (nullptr: the file position): the bytes read, 0 at
/// the end of the file, or -1 and errno.
inline ssize_t read_file(int fd, void* buf, std::size_t n, OVERLAPPED* ov)
{
    DWORD got = 0;
    if (!::ReadFile(handle_of(fd), buf, static_cast<DWORD>(std::min(n, max_transfer)), &got, ov)) {
        return ::GetLastError() == ERROR_HANDLE_EOF ? 0 : fail_win32();
    }
    return static_cast<ssize_t>(got);
}

/// WriteFile of at most max_transfer bytes at `ov` (nullptr: the file position): the bytes written,
/// or -1 and errno.
inline ssize_t write_file(int fd, const void* buf, std::size_t n, OVERLAPPED* ov)
{
    DWORD put = 0;
    if (!::WriteFile(handle_of(fd), buf, static_cast<DWORD>(std::min(n, max_transfer)), &put, ov)) {
        return fail_win32();
    }
    return static_cast<ssize_t>(put);
}

inline ssize_t pread(int fd, void* buf, std::size_t n, off_t off)
{
    OVERLAPPED ov = at_offset(off);
    return read_file(fd, buf, n, &ov);
}

inline ssize_t pwrite(int fd, const void* buf, std::size_t n, off_t off)
{
    OVERLAPPED ov = at_offset(off);
    return write_file(fd, buf, n, &ov);
}

inline ssize_t read(int fd, void* buf, std::size_t n) { return read_file(fd, buf, n, nullptr); }

inline ssize_t write(int fd, const void* buf, std::size_t n) { return write_file(fd, buf, n, nullptr); }

/// The volume's free bytes for the current user, through the file's final path.
inline int fstatvfs(int fd, struct statvfs* st)
{
    wchar_t path[MAX_PATH + 64];
    const DWORD n = ::GetFinalPathNameByHandleW(handle_of(fd), path, MAX_PATH + 64, FILE_NAME_NORMALIZED);
    if (n == 0 || n >= MAX_PATH + 64) {
        return n == 0 ? fail_win32() : fail_errno(ENAMETOOLONG);
    }
    // The directory of the file: GetDiskFreeSpaceExW wants a directory.
    std::wstring dir(path, n);
    const auto slash = dir.find_last_of(L'\\');
    if (slash != std::wstring::npos) {
        dir.resize(slash + 1);
    }
    ULARGE_INTEGER avail{}, total{}, free_all{};
    if (!::GetDiskFreeSpaceExW(dir.c_str(), &avail, &total, &free_all)) {
        return fail_win32();
    }
    *st = statvfs{};
    st->f_bavail = avail.QuadPart;
    return 0;
}

inline int fstatfs(int fd, struct statfs* st)
{
    if (handle_of(fd) == INVALID_HANDLE_VALUE) {
        return fail_errno(EBADF);
    }
    *st = statfs{};
    return 0;
}

/// Access rights are fixed at creation (owner-only), so a mode change has nothing to do.
inline int fchmod(int fd, mode_t) { return handle_of(fd) == INVALID_HANDLE_VALUE ? fail_errno(EBADF) : 0; }

inline int fsync(int fd)
{
    const HANDLE h = handle_of(fd);
    BY_HANDLE_FILE_INFORMATION fi{};
    if (::GetFileInformationByHandle(h, &fi) && (fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0) {
        return 0; // NTFS journals directory entries itself; a directory handle cannot be flushed
    }
    return ::FlushFileBuffers(h) ? 0 : fail_win32();
}

/// flock: a byte-range lock on the last byte a file offset can name, which no read or write touches.
inline int flock(int fd, int op)
{
    const HANDLE h = handle_of(fd);
    OVERLAPPED ov{};
    ov.Offset = 0xfffffffeu;
    ov.OffsetHigh = 0x7fffffffu;
    if ((op & LOCK_UN) != 0) {
        return ::UnlockFileEx(h, 0, 1, 0, &ov) ? 0 : fail_win32();
    }
    DWORD f = (op & LOCK_EX) != 0 ? LOCKFILE_EXCLUSIVE_LOCK : 0;
    if ((op & LOCK_NB) != 0) {
        f |= LOCKFILE_FAIL_IMMEDIATELY;
    }
    if (::LockFileEx(h, f, 0, 1, 0, &ov)) {
        return 0;
    }
    const DWORD e = ::GetLastError();
    return fail_errno(e == ERROR_LOCK_VIOLATION || e == ERROR_IO_PENDING ? EWOULDBLOCK : errno_of_win32(e));
}

} // namespace ndshm::detail::sys_win32

#endif
