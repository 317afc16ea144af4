/// @file detail/sys_win32_files.hpp
/// Segments and files by name on Windows (see detail/sys_win32.hpp): the default segment directory
/// that stands for /dev/shm, paths relative to an open directory listing, open (CreateFileW sharing
/// read, write and delete, owner-only when created), unlink with the Linux lifetime (a mapped file is
/// renamed aside and deleted once unmapped), rename, and directory listings.
#ifndef NDSHM_DETAIL_SYS_WIN32_FILES_HPP
#define NDSHM_DETAIL_SYS_WIN32_FILES_HPP

#include "sys_win32_posix.hpp" // windows.h
#include "sys_win32_security.hpp"

#include <bcrypt.h>

#include <dirent.h>
#include <fcntl.h>
#include <io.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ndshm::detail {

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

} // namespace sys_win32
} // namespace ndshm::detail

#endif
