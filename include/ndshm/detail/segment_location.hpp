/// @file detail/segment_location.hpp
/// Where a segment lives (the POSIX shm namespace or a directory backend) and a file's identity:
/// opening a name, where it is visible as a file, and removing a name only while it still names the
/// file one holds. All system calls go through sys() (detail/sys.hpp).
#ifndef NDSHM_DETAIL_SEGMENT_LOCATION_HPP
#define NDSHM_DETAIL_SEGMENT_LOCATION_HPP

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <tuple>

#include "../options.hpp"
#include "config.hpp"
#include "sys.hpp"

namespace ndshm::detail {

/// Where a segment lives: the POSIX shm namespace (dir empty) or a file in a directory.
struct location {
    std::string dir;
    std::string name;

    NDSHM_DECL bool operator<(const location& o) const;
    NDSHM_DECL std::string path() const;
};

/// The path that names `l`: "/NAME" for POSIX shm (what shm_open takes), "DIR/NAME" in a directory
/// backend. Built on the stack when it fits, so that opening or removing a name allocates nothing;
/// location::path() is its copy as a string.
class location_path {
public:
    explicit location_path(const location& l)
    {
        const std::size_t n = l.dir.size() + 1 + l.name.size();
        char* p = m_small;
        if (n >= sizeof m_small) {
            m_long.resize(n);
            p = &m_long[0];
        }
        p = std::copy(l.dir.begin(), l.dir.end(), p);
        *p++ = '/';
        p = std::copy(l.name.begin(), l.name.end(), p);
        if (m_long.empty()) {
            *p = '\0';
        }
    }
    location_path(const location_path&) = delete;
    location_path& operator=(const location_path&) = delete;
    const char* c_str() const noexcept { return m_long.empty() ? m_small : m_long.c_str(); }

private:
    char m_small[256];
    std::string m_long;
};

/// A file's identity: its device and inode. A name that resolves to the same identity names the same
/// file; a name that was unlinked and created again names another one.
struct file_id {
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
    bool known() const noexcept { return ino != 0; }
    bool operator==(const file_id& o) const noexcept { return dev == o.dev && ino == o.ino; }
    bool operator!=(const file_id& o) const noexcept { return !(*this == o); }
};

inline file_id id_of(const struct stat& st) noexcept
{
    return file_id{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
}

/// The directory backend in force for `opt`: its directory, else $NDSHM_DIR, else "" (POSIX shm).
NDSHM_DECL std::string backend_dir(const options& opt);

/// Where generated and listed segments of the POSIX namespace are visible as files.
inline constexpr const char* posix_shm_dir = "/dev/shm";

/// The directory where the segments of the backend `dir` (empty: POSIX shm) are visible as files.
NDSHM_DECL std::string namespace_dir(const std::string& dir);

/// namespace_dir(dir) as messages show it: on Windows the default segment directory's real path
/// (%LOCALAPPDATA%\\ndshm) instead of the /dev/shm the sys() table translates.
NDSHM_DECL std::string shown_dir(const std::string& dir);

/// Opens `l` with open(2) flags `flags`; returns the fd or -1 with errno set.
NDSHM_DECL int open_location(const location& l, int flags, mode_t mode);

/// The system call that opens `l`, for messages: shm_open, or open in a directory backend.
inline const char* open_call(const location& l) noexcept { return l.dir.empty() ? "shm_open" : "open"; }

/// The system call that removes `l`, for messages: shm_unlink, or unlink in a directory backend.
inline const char* unlink_call(const location& l) noexcept { return l.dir.empty() ? "shm_unlink" : "unlink"; }

/// "<what> belongs to uid <uid>, not to uid <this process's uid>": why a file of another user is refused.
NDSHM_DECL std::string owned_by_other(const std::string& what, std::uint64_t uid);

/// Removes the name `l`; returns 0 or an errno value.
NDSHM_DECL int unlink_location(const location& l) noexcept;

/// Where the name `l` is visible as a file: /dev/shm/NAME for POSIX shared memory on Linux (where
/// glibc's shm_open puts it), DIR/NAME in a directory backend.
NDSHM_DECL std::string file_path(const location& l);

/// Whether the name `l` still names the file `id` (without following a symbolic link): 0 if it does,
/// ESTALE if it names another file now (removed and created again), else the errno of the look-up
/// (ENOENT: the name is gone).
NDSHM_DECL int names_file(const location& l, file_id id) noexcept;

/// Removes the name `l` only while it still names the file `id`: a name that someone unlinked and
/// someone else created again is left to its new owner. The caller must hold the file `id` (a mapping
/// or a descriptor of it) meanwhile: a file system may give a freed inode number to a new file. Returns
/// 0, ENOENT (the name is gone), ESTALE (it names another file now: left alone), or the errno of the
/// check or of the unlink. The check and the unlink are two system calls: a name that is unlinked and
/// created again in the microseconds between them can still go (no system call removes a name only if
/// it names a given file).
NDSHM_DECL int unlink_if_same(const location& l, file_id id) noexcept;

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

bool location::operator<(const location& o) const { return std::tie(dir, name) < std::tie(o.dir, o.name); }

std::string location::path() const { return location_path(*this).c_str(); }

std::string backend_dir(const options& opt)
{
    if (!opt.directory.empty()) {
        return opt.directory;
    }
    const char* env = std::getenv("NDSHM_DIR");
    return env != nullptr ? std::string(env) : std::string();
}

std::string namespace_dir(const std::string& dir) { return dir.empty() ? std::string(posix_shm_dir) : dir; }

std::string shown_dir(const std::string& dir)
{
#ifdef _WIN32
    return native_path(namespace_dir(dir).c_str());
#else
    return namespace_dir(dir);
#endif
}

int open_location(const location& l, int flags, mode_t mode)
{
    // O_NONBLOCK: a FIFO planted under the name must not block the open (no effect on regular files).
    flags |= O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    const location_path path(l);
    if (l.dir.empty()) {
        return retry_eintr([&] { return sys().shm_open(path.c_str(), flags, mode); });
    }
    return retry_eintr([&] { return sys().openat(AT_FDCWD, path.c_str(), flags, mode); });
}

std::string owned_by_other(const std::string& what, std::uint64_t uid)
{
    return what + " belongs to uid " + std::to_string(uid) + ", not to uid " + std::to_string(current_uid());
}

int unlink_location(const location& l) noexcept
{
    const location_path path(l);
    const int r = retry_eintr(
        [&] { return l.dir.empty() ? sys().shm_unlink(path.c_str()) : sys().unlinkat(AT_FDCWD, path.c_str(), 0); });
    return r == 0 ? 0 : errno;
}

std::string file_path(const location& l) { return namespace_dir(l.dir) + "/" + l.name; }

int names_file(const location& l, file_id id) noexcept
{
    struct stat st {};
    const std::string path = file_path(l);
    if (retry_eintr([&] { return sys().fstatat(AT_FDCWD, path.c_str(), &st, AT_SYMLINK_NOFOLLOW); }) != 0) {
        return errno;
    }
    return id_of(st) == id ? 0 : ESTALE;
}

int unlink_if_same(const location& l, file_id id) noexcept
{
    if (!id.known()) {
        return unlink_location(l);
    }
    const int err = names_file(l, id);
    return err != 0 ? err : unlink_location(l);
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
