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
///   and would not be a file NumPy can open: see the README's Windows section.
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
#ifndef NDSHM_DETAIL_SYS_WIN32_HPP
#define NDSHM_DETAIL_SYS_WIN32_HPP

#ifndef NOMINMAX
#define NOMINMAX // std::min and std::max must stay usable in every header that follows
#endif
#include <windows.h>

#include <bcrypt.h>
#include <aclapi.h>
#include <sddl.h>

#include <dirent.h>
#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>
#include <sys/types.h>

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

/// The default segment directory, the stand-in for /dev/shm: $NDSHM_SHM_DIR, else
/// %LOCALAPPDATA%\ndshm (else %TEMP%\ndshm). Created on first use, owner-only.
inline std::string default_segment_dir()
{
    if (const char* env = std::getenv("NDSHM_SHM_DIR"); env != nullptr && *env != '\0') {
        return env;
    }
    if (const char* app = std::getenv("LOCALAPPDATA"); app != nullptr && *app != '\0') {
        return std::string(app) + "\\ndshm";
    }
    wchar_t tmp[MAX_PATH + 1];
    const DWORD n = ::GetTempPathW(MAX_PATH + 1, tmp);
    return (n > 0 ? narrow(tmp) : std::string(".\\")) + "ndshm";
}

/// The token user's SID of this process (a copy), or empty if it cannot be read.
inline const std::vector<unsigned char>& current_user_sid() noexcept
{
    static const std::vector<unsigned char> sid = [] {
        std::vector<unsigned char> out;
        HANDLE token = nullptr;
        if (!::OpenProcessToken(::GetCurrentProcess(), TOKEN_QUERY, &token)) {
            return out;
        }
        DWORD len = 0;
        (void)::GetTokenInformation(token, TokenUser, nullptr, 0, &len);
        std::vector<unsigned char> buf(len);
        if (len != 0 && ::GetTokenInformation(token, TokenUser, buf.data(), len, &len)) {
            PSID s = reinterpret_cast<TOKEN_USER*>(buf.data())->User.Sid;
            const DWORD sl = ::GetLengthSid(s);
            out.assign(static_cast<unsigned char*>(s), static_cast<unsigned char*>(s) + sl);
        }
        ::CloseHandle(token);
        return out;
    }();
    return sid;
}

/// The current user's tag, the stand-in for the uid: a 31-bit hash (FNV-1a) of the user's SID, never 0.
/// It names the user in generated names and trailers; ownership itself is checked by SID.
inline uid_t current_uid() noexcept
{
    static const uid_t tag = [] {
        std::uint32_t h = 2166136261u;
        for (unsigned char c : current_user_sid()) {
            h = (h ^ c) * 16777619u;
        }
        h &= 0x7fffffffu;
        return h == 0 ? 1u : h;
    }();
    return tag;
}

/// A security descriptor that grants full access to the current user only (protected: nothing is
/// inherited from the directory), for segment files, their directory and the futex objects.
class owner_only_security {
public:
    owner_only_security() noexcept
    {
        const auto& sid = current_user_sid();
        if (sid.empty()) {
            return;
        }
        LPWSTR text = nullptr;
        if (!::ConvertSidToStringSidW(const_cast<unsigned char*>(sid.data()), &text)) {
            return;
        }
        const std::wstring sddl = std::wstring(L"D:P(A;;GA;;;") + text + L")";
        ::LocalFree(text);
        if (::ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl.c_str(), SDDL_REVISION_1, &m_sd, nullptr)) {
            m_sa.nLength = sizeof m_sa;
            m_sa.lpSecurityDescriptor = m_sd;
            m_sa.bInheritHandle = FALSE;
        }
    }
    owner_only_security(const owner_only_security&) = delete;
    owner_only_security& operator=(const owner_only_security&) = delete;
    ~owner_only_security()
    {
        if (m_sd != nullptr) {
            ::LocalFree(m_sd);
        }
    }
    /// The attributes to pass, or nullptr if no descriptor could be built (then creation fails closed
    /// in create_file: a segment is never made with the directory's inherited rights).
    SECURITY_ATTRIBUTES* get() noexcept { return m_sd != nullptr ? &m_sa : nullptr; }

private:
    PSECURITY_DESCRIPTOR m_sd = nullptr;
    SECURITY_ATTRIBUTES m_sa{};
};

inline HANDLE handle_of(int fd) noexcept { return reinterpret_cast<HANDLE>(::_get_osfhandle(fd)); }

/// Translates POSIX-namespace paths: "/dev/shm" and "/dev/shm/NAME" are the default segment directory.
inline std::string native_path(const char* path)
{
    const std::string p(path);
    static constexpr char shm[] = "/dev/shm";
    const std::size_t n = sizeof shm - 1;
    if (p.compare(0, n, shm) == 0 && (p.size() == n || p[n] == '/')) {
        return default_segment_dir() + (p.size() == n ? std::string() : "\\" + p.substr(n + 1));
    }
    return p;
}

/// Creates `dir` (one level) owner-only if it is missing.
inline void ensure_directory(const std::string& dir) noexcept
{
    owner_only_security sec;
    (void)::CreateDirectoryW(wide_path(dir).c_str(), sec.get());
}

namespace sys_win32 {

/// Open directory streams and their paths: dir_fd() names one by a pseudo descriptor that the *at
/// entries resolve (Windows has no descriptor of an open directory listing).
struct dir_table {
    std::mutex mutex;
    std::map<DIR*, std::pair<int, std::string>> dirs;
    int next = 0;
};
inline dir_table& dirs()
{
    static dir_table t;
    return t;
}
inline constexpr int dir_fd_base = -1000;

/// The path for `path` relative to `dirfd` (AT_FDCWD or a dir_fd() of an open listing); empty if
/// `dirfd` names nothing.
inline std::string at_path(int dirfd, const char* path);

inline int open_native(const std::string& path, int flags, mode_t) noexcept
{
    if (path.rfind("/proc/", 0) == 0 || path == "/dev/urandom") {
        return fail_errno(ENOENT); // no /proc (liveness asks Win32 instead) and no /dev/urandom
    }
    DWORD access = GENERIC_READ;
    const int acc = flags & (_O_RDONLY | _O_WRONLY | _O_RDWR);
    if (acc == _O_WRONLY) {
        access = GENERIC_WRITE;
    } else if (acc == _O_RDWR) {
        access = GENERIC_READ | GENERIC_WRITE;
    }
    DWORD disposition = OPEN_EXISTING;
    if ((flags & _O_CREAT) != 0) {
        disposition = (flags & _O_EXCL) != 0 ? CREATE_NEW : ((flags & _O_TRUNC) != 0 ? CREATE_ALWAYS : OPEN_ALWAYS);
    } else if ((flags & _O_TRUNC) != 0) {
        disposition = TRUNCATE_EXISTING;
    }
    DWORD attrs = FILE_ATTRIBUTE_NORMAL | FILE_FLAG_BACKUP_SEMANTICS; // BACKUP_SEMANTICS: directories open too
    if ((flags & O_NOFOLLOW) != 0) {
        attrs |= FILE_FLAG_OPEN_REPARSE_POINT;
    }
    owner_only_security sec;
    if ((flags & _O_CREAT) != 0 && sec.get() == nullptr) {
        return fail_errno(EACCES);
    }
    HANDLE h = ::CreateFileW(wide_path(path).c_str(), access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                             (flags & _O_CREAT) != 0 ? sec.get() : nullptr, disposition, attrs, nullptr);
    if (h == INVALID_HANDLE_VALUE) {
        const DWORD e = ::GetLastError();
        // A directory opened for writing is ERROR_ACCESS_DENIED on Windows, EISDIR on Linux; the
        // difference does not matter to ndshm, which never writes directories.
        return fail_errno(errno_of_win32(e));
    }
    if ((flags & O_DIRECTORY) != 0) {
        BY_HANDLE_FILE_INFORMATION fi{};
        if (!::GetFileInformationByHandle(h, &fi) || (fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) == 0) {
            ::CloseHandle(h);
            return fail_errno(ENOTDIR);
        }
    }
    const int fd = ::_open_osfhandle(reinterpret_cast<intptr_t>(h),
                                     (flags & (_O_RDONLY | _O_WRONLY | _O_RDWR)) | _O_BINARY | _O_NOINHERIT);
    if (fd < 0) {
        const int e = errno;
        ::CloseHandle(h);
        return fail_errno(e != 0 ? e : EMFILE);
    }
    return fd;
}

inline int shm_open(const char* name, int flags, mode_t mode)
{
    const std::string dir = default_segment_dir();
    if ((flags & _O_CREAT) != 0) {
        ensure_directory(dir);
    }
    return open_native(dir + "\\" + (name[0] == '/' ? name + 1 : name), flags, mode);
}

inline int openat(int dirfd, const char* path, int flags, mode_t mode)
{
    const std::string p = at_path(dirfd, path);
    return p.empty() ? fail_errno(EBADF) : open_native(p, flags, mode);
}

/// Deletes a file now, the POSIX way where Windows allows it (FILE_DISPOSITION_POSIX_SEMANTICS, Windows 10
/// 1709 and later: the name goes at once), else when its last handle closes. Returns 0 or -1 and errno
/// (EACCES for a file that some process maps: Windows refuses to delete those).
inline int delete_native(const std::string& path) noexcept
{
    HANDLE h = ::CreateFileW(wide_path(path).c_str(), DELETE | FILE_READ_ATTRIBUTES,
                             FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr, OPEN_EXISTING,
                             FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS, nullptr);
    if (h == INVALID_HANDLE_VALUE) {
        return fail_win32();
    }
    // FILE_DISPOSITION_INFO_EX with FILE_DISPOSITION_FLAG_DELETE | FILE_DISPOSITION_FLAG_POSIX_SEMANTICS.
    struct {
        ULONG flags;
    } ex{0x1 | 0x2};
    BOOL ok = ::SetFileInformationByHandle(h, static_cast<FILE_INFO_BY_HANDLE_CLASS>(21) /* FileDispositionInfoEx */,
                                           &ex, sizeof ex);
    DWORD e = ok ? 0 : ::GetLastError();
    if (!ok && e != ERROR_ACCESS_DENIED) {
        FILE_DISPOSITION_INFO di{};
        di.DeleteFile = TRUE;
        ok = ::SetFileInformationByHandle(h, FileDispositionInfo, &di, sizeof di);
        e = ok ? 0 : ::GetLastError();
    }
    ::CloseHandle(h);
    return ok ? 0 : fail_errno(errno_of_win32(e));
}

/// Files that an unlink in this process moved aside while mapped, deleted once unmapped (see unlink_native).
struct unlinked_table {
    std::mutex mutex;
    std::vector<std::string> paths;
};
inline unlinked_table& unlinked()
{
    static unlinked_table t;
    return t;
}

inline constexpr char unlinked_prefix[] = ".unlinked_";

/// Deletes what `paths` names where it can (a file nobody maps any more); keeps the rest.
inline void delete_unlinked(std::vector<std::string>& paths) noexcept
{
    std::vector<std::string> keep;
    for (auto& p : paths) {
        if (delete_native(p) != 0 && errno != ENOENT) {
            keep.push_back(std::move(p));
        }
    }
    paths.swap(keep);
}

/// Deletes the files that unlinks moved aside in `dir` (by any process) and nobody maps any more.
inline void sweep_unlinked(const std::string& dir) noexcept
{
    WIN32_FIND_DATAW fd{};
    HANDLE f = ::FindFirstFileW(wide_path(dir + "\\" + unlinked_prefix + "*").c_str(), &fd);
    if (f == INVALID_HANDLE_VALUE) {
        return;
    }
    std::vector<std::string> found;
    do {
        found.push_back(dir + "\\" + narrow(fd.cFileName));
    } while (::FindNextFileW(f, &fd));
    ::FindClose(f);
    delete_unlinked(found);
}

/// unlink(2) on Windows. Windows refuses to delete a file that any process maps, and a file deleted
/// while some process has it open keeps its name until the last handle closes. So the file is first
/// renamed aside to DIR\\.unlinked_NAME_RANDOM: its name is free at once and its mappings stay valid,
/// as on Linux. Then it is deleted; if it is still mapped, it goes when it is unmapped: by this process
/// at its munmap, else by the next unlink in that directory (any process). Names starting with '.' are
/// no segment names, so listings never show these files.
inline int unlink_native(const std::string& path) noexcept
{
    const auto slash = path.find_last_of("\\/");
    const std::string dir = slash == std::string::npos ? std::string(".") : path.substr(0, slash);
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    unsigned char rnd[8] = {};
    (void)::BCryptGenRandom(nullptr, rnd, sizeof rnd, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
    char hex[17];
    for (int i = 0; i < 8; ++i) {
        std::snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    }
    const std::string aside = dir + "\\" + unlinked_prefix + name + "_" + hex;
    if (!::MoveFileExW(wide_path(path).c_str(), wide_path(aside).c_str(), 0)) {
        const DWORD e = ::GetLastError();
        if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND) {
            return fail_errno(ENOENT);
        }
        return delete_native(path); // a directory, or a file system that cannot rename: delete in place
    }
    if (delete_native(aside) != 0) {
        std::lock_guard<std::mutex> g(unlinked().mutex);
        unlinked().paths.push_back(aside);
    }
    sweep_unlinked(dir);
    return 0;
}

inline int shm_unlink(const char* name)
{
    return unlink_native(default_segment_dir() + "\\" + (name[0] == '/' ? name + 1 : name));
}

inline int unlinkat(int dirfd, const char* path, int flags)
{
    const std::string p = at_path(dirfd, path);
    if (p.empty()) {
        return fail_errno(EBADF);
    }
    if ((flags & AT_REMOVEDIR) != 0) {
        return ::RemoveDirectoryW(wide_path(p).c_str()) ? 0 : fail_win32();
    }
    return unlink_native(p);
}

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

/// True if the owner SID of the object behind `h` is the current user's SID.
inline bool owned_by_current_user(HANDLE h) noexcept
{
    PSID owner = nullptr;
    PSECURITY_DESCRIPTOR sd = nullptr;
    if (::GetSecurityInfo(h, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &owner, nullptr, nullptr, nullptr, &sd) !=
        ERROR_SUCCESS) {
        return false;
    }
    const auto& me = current_user_sid();
    const bool same = owner != nullptr && !me.empty() && ::IsValidSid(owner) &&
                      ::EqualSid(owner, const_cast<unsigned char*>(me.data()));
    ::LocalFree(sd);
    return same;
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

inline ssize_t pread(int fd, void* buf, std::size_t n, off_t off)
{
    OVERLAPPED ov{};
    const auto o = static_cast<std::uint64_t>(off);
    ov.Offset = static_cast<DWORD>(o);
    ov.OffsetHigh = static_cast<DWORD>(o >> 32);
    DWORD got = 0;
    const DWORD want = n > 0x40000000u ? 0x40000000u : static_cast<DWORD>(n);
    if (!::ReadFile(handle_of(fd), buf, want, &got, &ov)) {
        if (::GetLastError() == ERROR_HANDLE_EOF) {
            return 0;
        }
        return fail_win32();
    }
    return static_cast<ssize_t>(got);
}

inline ssize_t pwrite(int fd, const void* buf, std::size_t n, off_t off)
{
    OVERLAPPED ov{};
    const auto o = static_cast<std::uint64_t>(off);
    ov.Offset = static_cast<DWORD>(o);
    ov.OffsetHigh = static_cast<DWORD>(o >> 32);
    DWORD put = 0;
    const DWORD want = n > 0x40000000u ? 0x40000000u : static_cast<DWORD>(n);
    if (!::WriteFile(handle_of(fd), buf, want, &put, &ov)) {
        return fail_win32();
    }
    return static_cast<ssize_t>(put);
}

inline ssize_t read(int fd, void* buf, std::size_t n)
{
    DWORD got = 0;
    const DWORD want = n > 0x40000000u ? 0x40000000u : static_cast<DWORD>(n);
    if (!::ReadFile(handle_of(fd), buf, want, &got, nullptr)) {
        return ::GetLastError() == ERROR_HANDLE_EOF ? 0 : fail_win32();
    }
    return static_cast<ssize_t>(got);
}

inline ssize_t write(int fd, const void* buf, std::size_t n)
{
    DWORD put = 0;
    const DWORD want = n > 0x40000000u ? 0x40000000u : static_cast<DWORD>(n);
    if (!::WriteFile(handle_of(fd), buf, want, &put, nullptr)) {
        return fail_win32();
    }
    return static_cast<ssize_t>(put);
}

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

/// The views this process mapped, with their file's identity, so that a futex word in one can be named
/// in every process that maps the same file.
struct view_record {
    std::size_t size = 0;
    std::uint64_t volume = 0;
    std::uint64_t index = 0;
    std::uint64_t offset = 0; ///< of the returned address in the file
    void* base = nullptr;     ///< what MapViewOfFile or VirtualAlloc returned (the address may lie above it)
    bool anonymous = false;
};
struct view_table {
    std::mutex mutex;
    std::map<std::uintptr_t, view_record> views;
};
inline view_table& views()
{
    static view_table t;
    return t;
}

inline std::string at_path(int dirfd, const char* path)
{
    if (dirfd == AT_FDCWD) {
        return native_path(path);
    }
    std::lock_guard<std::mutex> g(dirs().mutex);
    for (const auto& d : dirs().dirs) {
        if (d.second.first == dirfd) {
            return d.second.second + "\\" + path;
        }
    }
    return std::string();
}

/// mmap(2): MAP_SHARED maps a view of the file (PAGE_READWRITE or PAGE_READONLY), MAP_PRIVATE a
/// copy-on-write view, MAP_ANONYMOUS committed private memory. An offset need only be page-aligned,
/// as on Linux: the view starts at the allocation granularity (64 KiB) below it.
inline void* mmap(void*, std::size_t n, int prot, int flags, int fd, off_t off)
{
    if (n == 0 || off < 0) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    if ((flags & MAP_ANONYMOUS) != 0) {
        void* p = ::VirtualAlloc(nullptr, n, MEM_RESERVE | MEM_COMMIT,
                                 (prot & PROT_WRITE) != 0 ? PAGE_READWRITE : PAGE_READONLY);
        if (p == nullptr) {
            errno = ENOMEM;
            return MAP_FAILED;
        }
        std::lock_guard<std::mutex> g(views().mutex);
        views().views[reinterpret_cast<std::uintptr_t>(p)] = view_record{n, 0, 0, 0, p, true};
        return p;
    }
    const bool shared = (flags & MAP_SHARED) != 0;
    const HANDLE h = handle_of(fd);
    BY_HANDLE_FILE_INFORMATION fi{};
    if (!::GetFileInformationByHandle(h, &fi)) {
        fail_win32();
        return MAP_FAILED;
    }
    const bool writable = (prot & PROT_WRITE) != 0;
    const DWORD protect = !writable ? PAGE_READONLY : (shared ? PAGE_READWRITE : PAGE_WRITECOPY);
    HANDLE section = ::CreateFileMappingW(h, nullptr, protect, 0, 0, nullptr);
    if (section == nullptr) {
        const DWORD e = ::GetLastError();
        errno = e == ERROR_FILE_INVALID ? EINVAL : (e == ERROR_COMMITMENT_LIMIT ? ENOMEM : errno_of_win32(e));
        return MAP_FAILED;
    }
    SYSTEM_INFO si{};
    ::GetSystemInfo(&si);
    const auto o = static_cast<std::uint64_t>(off);
    const std::uint64_t skip = o % si.dwAllocationGranularity;
    const std::uint64_t at = o - skip;
    const DWORD access = !writable ? FILE_MAP_READ : (shared ? FILE_MAP_READ | FILE_MAP_WRITE : FILE_MAP_COPY);
    void* base = ::MapViewOfFile(section, access, static_cast<DWORD>(at >> 32), static_cast<DWORD>(at),
                                 static_cast<SIZE_T>(n + skip));
    const DWORD e = ::GetLastError();
    ::CloseHandle(section); // the view keeps the section alive
    if (base == nullptr) {
        errno = e == ERROR_COMMITMENT_LIMIT ? ENOMEM : errno_of_win32(e);
        return MAP_FAILED;
    }
    void* p = static_cast<unsigned char*>(base) + skip;
    std::lock_guard<std::mutex> g(views().mutex);
    views().views[reinterpret_cast<std::uintptr_t>(p)] = view_record{
        n, fi.dwVolumeSerialNumber, std::uint64_t(fi.nFileIndexHigh) << 32 | fi.nFileIndexLow, o, base, false};
    return p;
}

inline int munmap(void* p, std::size_t)
{
    view_record r;
    {
        std::lock_guard<std::mutex> g(views().mutex);
        const auto it = views().views.find(reinterpret_cast<std::uintptr_t>(p));
        if (it == views().views.end()) {
            return fail_errno(EINVAL); // only whole mappings are unmapped
        }
        r = it->second;
        views().views.erase(it);
    }
    if (r.anonymous) {
        return ::VirtualFree(r.base, 0, MEM_RELEASE) ? 0 : fail_win32();
    }
    if (!::UnmapViewOfFile(r.base)) {
        return fail_win32();
    }
    std::lock_guard<std::mutex> g(unlinked().mutex);
    if (!unlinked().paths.empty()) {
        delete_unlinked(unlinked().paths);
    }
    return 0;
}

/// Prefaulting advice: Windows faults pages in on demand and has no populate; space is reserved at
/// creation (posix_fallocate), so nothing is lost by taking the advice as given.
inline int madvise(void*, std::size_t, int) { return 0; }

/// mlock/munlock: VirtualLock/VirtualUnlock (the limit is the process's minimum working set size).
inline int mlock(const void* a, std::size_t n) { return ::VirtualLock(const_cast<void*>(a), n) ? 0 : fail_win32(); }
inline int munlock(const void* a, std::size_t n) { return ::VirtualUnlock(const_cast<void*>(a), n) ? 0 : fail_win32(); }
/// msync: FlushViewOfFile writes the view's changed pages to the file.
inline int msync(void* a, std::size_t n, int) { return ::FlushViewOfFile(a, n) ? 0 : fail_win32(); }

inline int close(int fd) { return ::_close(fd); }

inline DIR* opendir(const char* p)
{
    const std::string path = native_path(p);
    DIR* d = ::opendir(path.c_str());
    if (d != nullptr) {
        std::lock_guard<std::mutex> g(dirs().mutex);
        dirs().next = (dirs().next + 1) % 1000000;
        dirs().dirs[d] = {dir_fd_base - dirs().next, path};
    }
    return d;
}
inline dirent* readdir(DIR* d) { return ::readdir(d); }
inline int closedir(DIR* d)
{
    {
        std::lock_guard<std::mutex> g(dirs().mutex);
        dirs().dirs.erase(d);
    }
    return ::closedir(d);
}

inline int fsync(int fd)
{
    const HANDLE h = handle_of(fd);
    BY_HANDLE_FILE_INFORMATION fi{};
    if (::GetFileInformationByHandle(h, &fi) && (fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0) {
        return 0; // NTFS journals directory entries itself; a directory handle cannot be flushed
    }
    return ::FlushFileBuffers(h) ? 0 : fail_win32();
}

inline int renameat2(int od, const char* o, int nd, const char* n, unsigned flags)
{
    if (od != AT_FDCWD || nd != AT_FDCWD) {
        return fail_errno(ENOSYS);
    }
    const std::string from = native_path(o);
    const std::string to = native_path(n);
    const bool replace = (flags & RENAME_NOREPLACE) == 0;
    if (::MoveFileExW(wide_path(from).c_str(), wide_path(to).c_str(), replace ? MOVEFILE_REPLACE_EXISTING : 0)) {
        return 0;
    }
    if (!replace || ::GetLastError() != ERROR_ACCESS_DENIED) {
        return fail_win32();
    }
    // Windows refuses to replace a file that is open or mapped. Remove the old one first (unlink_native
    // moves a mapped one aside), then move the new one in: readers that open the name in between see
    // no file (not_found) instead of Linux's atomic replacement; those that have it open keep it.
    if (unlink_native(to) != 0 && errno != ENOENT) {
        return -1;
    }
    return ::MoveFileExW(wide_path(from).c_str(), wide_path(to).c_str(), 0) ? 0 : fail_win32();
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

inline ssize_t getrandom(void* b, std::size_t n, unsigned)
{
    const ULONG want = n > 0x40000000u ? 0x40000000u : static_cast<ULONG>(n);
    const NTSTATUS s = ::BCryptGenRandom(nullptr, static_cast<PUCHAR>(b), want, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
    if (s < 0) {
        return fail_errno(EIO);
    }
    return static_cast<ssize_t>(want);
}

/// A process or thread id, opened for a query: Windows ids name processes and threads in one table, so
/// an id is one or the other. Returns the handle, or nullptr with `err` set (ESRCH: no such id).
inline HANDLE open_process_or_thread(std::uint64_t id, bool& is_thread, DWORD extra_access, int& err) noexcept
{
    err = 0;
    is_thread = false;
    const DWORD pid = static_cast<DWORD>(id);
    HANDLE h = ::OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | extra_access, FALSE, pid);
    if (h != nullptr) {
        return h;
    }
    DWORD e = ::GetLastError();
    if (e == ERROR_INVALID_PARAMETER && extra_access == 0) {
        h = ::OpenThread(THREAD_QUERY_LIMITED_INFORMATION, FALSE, pid);
        if (h != nullptr) {
            is_thread = true;
            return h;
        }
        e = ::GetLastError();
    }
    err = e == ERROR_INVALID_PARAMETER ? ESRCH : (e == ERROR_ACCESS_DENIED ? EPERM : errno_of_win32(e));
    return nullptr;
}

/// What /proc/ID/stat tells on Linux, for liveness.hpp: state 'R' for a running process or thread,
/// 'Z' for one that exited (a handle still holds its id), and the creation time (100 ns units since
/// 1601) as its start time. Returns 0 or an errno value (ENOENT: no such id).
inline int process_stat(std::uint64_t id, char& state, std::uint64_t& start) noexcept
{
    bool thread = false;
    int err = 0;
    HANDLE h = open_process_or_thread(id, thread, 0, err);
    if (h == nullptr) {
        return err == ESRCH ? ENOENT : err;
    }
    FILETIME created{}, exited{}, kernel{}, user{};
    DWORD code = 0;
    const BOOL ok = thread ? ::GetThreadTimes(h, &created, &exited, &kernel, &user) && ::GetExitCodeThread(h, &code)
                           : ::GetProcessTimes(h, &created, &exited, &kernel, &user) && ::GetExitCodeProcess(h, &code);
    const DWORD e = ::GetLastError();
    ::CloseHandle(h);
    if (!ok) {
        return errno_of_win32(e);
    }
    state = code == STILL_ACTIVE ? 'R' : 'Z';
    start = std::uint64_t(created.dwHighDateTime) << 32 | created.dwLowDateTime;
    return 0;
}

/// kill(pid, 0): whether the id names a live process or thread; kill(pid, sig): TerminateProcess.
inline int kill(pid_t pid, int sig)
{
    if (pid <= 0) {
        return fail_errno(EINVAL);
    }
    bool thread = false;
    int err = 0;
    HANDLE h = open_process_or_thread(static_cast<std::uint64_t>(pid), thread,
                                      sig == 0 ? 0 : static_cast<DWORD>(PROCESS_TERMINATE), err);
    if (h == nullptr) {
        return fail_errno(err);
    }
    DWORD code = 0;
    BOOL ok = thread ? ::GetExitCodeThread(h, &code) : ::GetExitCodeProcess(h, &code);
    int r = 0;
    if (!ok) {
        r = fail_win32();
    } else if (code != STILL_ACTIVE) {
        r = fail_errno(ESRCH); // exited: an open handle keeps its id, as a zombie keeps its pid
    } else if (sig != 0) {
        r = ::TerminateProcess(h, 128u + static_cast<unsigned>(sig)) ? 0 : fail_win32();
    }
    ::CloseHandle(h);
    return r;
}

/// The named objects behind one futex word: a semaphore its waiters sleep on and a shared count of them.
struct futex_objects {
    HANDLE semaphore = nullptr;
    HANDLE counter_section = nullptr;
    volatile LONG* waiters = nullptr;
};

struct futex_table {
    std::mutex mutex;
    std::unordered_map<std::string, futex_objects> objects; // kept open for the life of the process
};
inline futex_table& futexes()
{
    static futex_table t;
    return t;
}

/// The name of the word at `word`: its file and offset if it lies in a mapped view, else this process
/// and its address (private memory).
inline std::wstring futex_name(const std::uint32_t* word)
{
    const auto a = reinterpret_cast<std::uintptr_t>(word);
    char buf[96];
    {
        std::lock_guard<std::mutex> g(views().mutex);
        auto& v = views().views;
        auto it = v.upper_bound(a);
        if (it != v.begin()) {
            --it;
            if (a - it->first < it->second.size && !it->second.anonymous) {
                std::snprintf(buf, sizeof buf, "Local\\ndshm_fx_%llx_%llx_%llx",
                              static_cast<unsigned long long>(it->second.volume),
                              static_cast<unsigned long long>(it->second.index),
                              static_cast<unsigned long long>(it->second.offset + (a - it->first)));
                return std::wstring(buf, buf + std::strlen(buf));
            }
        }
    }
    std::snprintf(buf, sizeof buf, "Local\\ndshm_fx_p%lu_%llx", static_cast<unsigned long>(::GetCurrentProcessId()),
                  static_cast<unsigned long long>(a));
    return std::wstring(buf, buf + std::strlen(buf));
}

/// The objects of `name`: created if `create`, else opened if some process created them. Returns
/// nullptr (errno set) if they do not exist and `create` is false, or cannot be made.
inline futex_objects* futex_lookup(const std::wstring& name, bool create)
{
    const std::string key(name.begin(), name.end());
    std::lock_guard<std::mutex> g(futexes().mutex);
    auto it = futexes().objects.find(key);
    if (it != futexes().objects.end()) {
        return &it->second;
    }
    futex_objects o;
    const std::wstring count_name = name + L"_n";
    if (create) {
        owner_only_security sec;
        o.semaphore = ::CreateSemaphoreW(sec.get(), 0, LONG_MAX, name.c_str());
        if (o.semaphore != nullptr) {
            o.counter_section = ::CreateFileMappingW(INVALID_HANDLE_VALUE, sec.get(), PAGE_READWRITE, 0, 4096,
                                                     count_name.c_str());
        }
    } else {
        o.semaphore = ::OpenSemaphoreW(SEMAPHORE_MODIFY_STATE | SYNCHRONIZE, FALSE, name.c_str());
        if (o.semaphore != nullptr) {
            o.counter_section = ::OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, count_name.c_str());
        }
    }
    if (o.counter_section != nullptr) {
        o.waiters = static_cast<volatile LONG*>(
            ::MapViewOfFile(o.counter_section, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 4096));
    }
    if (o.waiters == nullptr) {
        const int e = errno_of_win32(::GetLastError());
        if (o.counter_section != nullptr) {
            ::CloseHandle(o.counter_section);
        }
        if (o.semaphore != nullptr) {
            ::CloseHandle(o.semaphore);
        }
        errno = e;
        return nullptr;
    }
    return &futexes().objects.emplace(key, o).first->second;
}

/// FUTEX_WAIT and FUTEX_WAKE on a word that other processes map too (see the file comment).
inline long futex(std::uint32_t* word, int op, std::uint32_t val, const struct timespec* timeout)
{
    const std::wstring name = futex_name(word);
    if (op == FUTEX_WAKE) {
        ::MemoryBarrier(); // the caller's store to the word before the read of the waiter count
        futex_objects* o = futex_lookup(name, false);
        if (o == nullptr) {
            return 0; // nobody ever waited on this word
        }
        const LONG waiting = *o->waiters;
        const LONG n = std::min<LONG>(waiting, static_cast<LONG>(std::min<std::uint32_t>(val, LONG_MAX)));
        if (n > 0) {
            (void)::ReleaseSemaphore(o->semaphore, n, nullptr);
        }
        return n > 0 ? n : 0;
    }
    if (op != FUTEX_WAIT) {
        return fail_errno(ENOSYS);
    }
    futex_objects* o = futex_lookup(name, true);
    if (o == nullptr) {
        return -1;
    }
    ::InterlockedIncrement(o->waiters); // a full barrier: counted before the word is read
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) != val) {
        ::InterlockedDecrement(o->waiters);
        return fail_errno(EAGAIN);
    }
    DWORD ms = INFINITE;
    if (timeout != nullptr) {
        const std::uint64_t ns = static_cast<std::uint64_t>(timeout->tv_sec) * 1000000000u +
                                 static_cast<std::uint64_t>(timeout->tv_nsec);
        const std::uint64_t m = (ns + 999999u) / 1000000u;
        ms = m >= INFINITE ? INFINITE - 1 : static_cast<DWORD>(m);
    }
    const DWORD r = ::WaitForSingleObject(o->semaphore, ms);
    ::InterlockedDecrement(o->waiters);
    if (r == WAIT_OBJECT_0) {
        return 0;
    }
    return fail_errno(r == WAIT_TIMEOUT ? ETIMEDOUT : EINVAL);
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

/// The page size (the unit of mappings' offsets).
inline std::size_t page_size() noexcept
{
    SYSTEM_INFO si{};
    ::GetSystemInfo(&si);
    return si.dwPageSize;
}

/// This thread's id (the lock records it): Windows thread ids share one table with process ids.
inline std::uint32_t current_tid() noexcept { return static_cast<std::uint32_t>(::GetCurrentThreadId()); }

} // namespace ndshm::detail

#endif
