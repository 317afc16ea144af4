/// @file segment.hpp
/// Segment names and lifetime: unlink, free_session, free_all.
#ifndef NDSHM_SEGMENT_HPP
#define NDSHM_SEGMENT_HPP

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include <dirent.h>

#include "detail/segment_impl.hpp"
#include "error.hpp"
#include "options.hpp"

namespace ndshm {

namespace detail {

/// Collects the names in `dir` that start with `prefix` (any name for "") and are regular files of the calling
/// user. Returns false if `dir` is /dev/shm and does not exist (no POSIX shm listing on this system).
/// @throws the ndshm error that fits the errno if the directory cannot be listed
inline bool list_user_files_with_prefix(const std::string& op, const std::string& dir, const char* prefix,
                                        std::vector<std::string>& names)
{
    DIR* d = nullptr;
    do {
        d = sys().opendir(dir.c_str());
    } while (d == nullptr && errno == EINTR);
    if (d == nullptr) {
        const int err = errno;
        if (err == ENOENT && dir == posix_shm_dir) {
            return false;
        }
        raise_errno(op, dir, err, "opendir");
    }
    struct dir_guard {
        DIR* d;
        ~dir_guard() { (void)sys().closedir(d); }
    } guard{d};
    const uid_t me = current_uid();
    for (;;) {
        errno = 0;
        const dirent* e = sys().readdir(d);
        if (e == nullptr) {
            if (errno == 0) {
                return true;
            }
            if (errno == EINTR) {
                continue;
            }
            raise_errno(op, dir, errno, "readdir");
        }
        if (std::strncmp(e->d_name, prefix, std::strlen(prefix)) != 0 || std::strcmp(e->d_name, ".") == 0 ||
            std::strcmp(e->d_name, "..") == 0) {
            continue;
        }
        struct stat st {};
        if (retry_eintr([&] { return sys().fstatat(dir_fd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW); }) != 0) {
            if (errno == ENOENT) {
                continue; // removed since readdir
            }
            raise_errno(op, dir + "/" + e->d_name, errno, "fstatat");
        }
        if (S_ISREG(st.st_mode) && st.st_uid == me) {
            names.emplace_back(e->d_name);
        }
    }
}

/// The names of the calling user's regular files in `dir` that start with `ndshm_`.
inline bool list_user_segments(const std::string& op, const std::string& dir, std::vector<std::string>& names)
{
    return list_user_files_with_prefix(op, dir, name_prefix, names);
}

} // namespace detail

/// Removes the segment `name` now. Processes that have it mapped keep their mappings; new attaches
/// fail with not_found. Clears this process's ownership of the name, so no handle unlinks it later.
/// @throws not_found if there is no such segment, permission_denied, error
inline void unlink(const std::string& name, const options& opt = {})
{
    detail::check_name("unlink", detail::segment_name(name));
    const detail::location loc{detail::backend_dir(opt), detail::segment_name(name)};
    const int err = detail::unlink_location(loc);
    // Ownership goes with the name; a failed unlink leaves both, so the owning handle still removes it.
    if (err == 0 || err == ENOENT) {
        (void)detail::session().remove(loc);
    }
    if (err != 0) {
        detail::raise_errno("unlink", name, err, loc.dir.empty() ? "shm_unlink" : "unlink");
    }
}

/// Unlinks every segment this process created and still owns (not persisted, not yet unlinked).
/// Mappings stay valid. In a forked child this removes nothing of the parent's. A name that someone
/// else unlinked and created again since is theirs: it stays (see the README for the remaining window).
/// @returns the number of names removed
inline std::size_t free_session() noexcept
{
    std::size_t n = 0;
    for (const auto& owned : detail::session().take_all()) {
        n += detail::unlink_if_same(owned.first, owned.second) == 0 ? 1 : 0;
    }
    return n;
}

/// Unlinks every ndshm segment of the calling user on this machine: every name starting with
/// `ndshm_` that belongs to this user, in /dev/shm and in the directory backend of `opt` (or
/// $NDSHM_DIR). Other users' segments are never touched. Mappings stay valid.
/// @returns the number of names removed
/// @throws error (or the subclass that fits the errno) if a directory cannot be read, or if a name
/// could not be removed; every other name is still tried first
inline std::size_t free_all(const options& opt = {})
{
    std::vector<std::string> dirs{detail::posix_shm_dir};
    const std::string backend = detail::backend_dir(opt);
    if (!backend.empty()) {
        dirs.push_back(backend);
    }
    std::size_t n = 0;
    for (const auto& dir : dirs) {
        std::vector<std::string> names;
        if (!detail::list_user_segments("free_all in", dir, names)) {
            continue; // no /dev/shm listing on this system
        }
        int failed = 0;
        std::string failed_name;
        for (const auto& name : names) {
            const detail::location loc{dir == detail::posix_shm_dir ? std::string() : dir, name};
            const int err = detail::unlink_location(loc);
            if (err == 0 || err == ENOENT) { // ENOENT: someone else removed it meanwhile
                (void)detail::session().remove(loc);
                n += err == 0 ? 1 : 0;
            } else if (failed == 0) {
                failed = err;
                failed_name = name;
            }
        }
        if (failed != 0) {
            detail::raise_errno("free_all (after removing " + std::to_string(n) + " segments) could not remove",
                                failed_name, failed, dir == detail::posix_shm_dir ? "shm_unlink" : "unlink");
        }
    }
    return n;
}

} // namespace ndshm

#endif
