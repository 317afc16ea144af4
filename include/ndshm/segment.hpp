/// @file segment.hpp
/// Segment names and lifetime: unlink, free_session, free_all.
#ifndef NDSHM_SEGMENT_HPP
#define NDSHM_SEGMENT_HPP

#include <cstddef>
#include <string>
#include <vector>

#include <dirent.h>

#include "detail/segment_impl.hpp"
#include "error.hpp"
#include "options.hpp"

namespace ndshm {

/// Removes the segment `name` now. Processes that have it mapped keep their mappings; new attaches
/// fail with not_found. Clears this process's ownership of the name, so no handle unlinks it later.
/// @throws not_found if there is no such segment, permission_denied, error
inline void unlink(const std::string& name, const options& opt = {})
{
    detail::check_name("unlink", name);
    const detail::location loc{detail::backend_dir(opt), name};
    (void)detail::session().remove(loc);
    if (const int err = detail::unlink_location(loc); err != 0) {
        detail::raise_errno("unlink", name, err, loc.dir.empty() ? "shm_unlink" : "unlink");
    }
}

/// Unlinks every segment this process created and still owns (not persisted, not yet unlinked).
/// Mappings stay valid. In a forked child this removes nothing of the parent's.
/// @returns the number of names removed
inline std::size_t free_session() noexcept
{
    std::size_t n = 0;
    for (const auto& loc : detail::session().take_all()) {
        n += detail::unlink_location(loc) == 0 ? 1 : 0;
    }
    return n;
}

/// Unlinks every ndshm segment of the calling user on this machine: every name starting with
/// `ndshm_` that belongs to this user, in /dev/shm and in the directory backend of `opt` (or
/// $NDSHM_DIR). Other users' segments are never touched. Mappings stay valid.
/// @returns the number of names removed
/// @throws error if a directory cannot be read
inline std::size_t free_all(const options& opt = {})
{
    std::vector<std::string> dirs{detail::posix_shm_dir};
    const std::string backend = detail::backend_dir(opt);
    if (!backend.empty()) {
        dirs.push_back(backend);
    }
    std::size_t n = 0;
    for (const auto& dir : dirs) {
        DIR* d = ::opendir(dir.c_str());
        if (d == nullptr) {
            if (errno == ENOENT && dir == detail::posix_shm_dir) {
                continue; // no /dev/shm listing on this system
            }
            detail::raise_errno("free_all in", dir, errno, "opendir");
        }
        std::vector<std::string> names;
        while (const dirent* e = ::readdir(d)) {
            const std::string name = e->d_name;
            struct stat st {};
            if (name.rfind(detail::name_prefix, 0) == 0 &&
                ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
                st.st_uid == ::geteuid()) {
                names.push_back(name);
            }
        }
        ::closedir(d);
        for (const auto& name : names) {
            const detail::location loc{dir == detail::posix_shm_dir ? std::string() : dir, name};
            (void)detail::session().remove(loc);
            n += detail::unlink_location(loc) == 0 ? 1 : 0;
        }
    }
    return n;
}

} // namespace ndshm

#endif
