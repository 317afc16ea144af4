/// @file segment.hpp
/// Segment names and lifetime: unlink, free_session, free_all.
#ifndef NDSHM_SEGMENT_HPP
#define NDSHM_SEGMENT_HPP

#include <cerrno>
#include <cstddef>
#include <string>
#include <vector>

#include "detail/config.hpp"
#include "detail/segment_impl.hpp"
#include "error.hpp"
#include "options.hpp"

namespace ndshm {

/// Removes the segment `name` now. Processes that have it mapped keep their mappings; new attaches
/// fail with not_found. Clears this process's ownership of the name, so no handle unlinks it later.
/// @throws not_found if there is no such segment, permission_denied, error
NDSHM_DECL void unlink(const std::string& name, const options& opt = {});

/// Unlinks every segment this process created and still owns (not persisted, not yet unlinked).
/// Mappings stay valid. In a forked child this removes nothing of the parent's. A name that someone
/// else unlinked and created again since is theirs: it stays (see the README for the remaining window).
/// @returns the number of names removed
NDSHM_DECL std::size_t free_session() noexcept;

/// Unlinks every ndshm segment of the calling user on this machine: every name starting with
/// `ndshm_` that belongs to this user, in /dev/shm and in the directory backend of `opt` (or
/// $NDSHM_DIR). Other users' segments are never touched. Mappings stay valid.
/// @returns the number of names removed
/// @throws error (or the subclass that fits the errno) if a directory cannot be read, or if a name
/// could not be removed; every other name is still tried first
NDSHM_DECL std::size_t free_all(const options& opt = {});

} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm {

void unlink(const std::string& name, const options& opt)
{
    detail::check_name("unlink", detail::segment_name(name));
    const detail::location loc{detail::backend_dir(opt), detail::segment_name(name)};
    const int err = detail::unlink_name(loc);
    if (err != 0) {
        detail::raise_errno("unlink", name, err, detail::unlink_call(loc));
    }
}

std::size_t free_session() noexcept
{
    std::size_t n = 0;
    for (const auto& owned : detail::session().take_all()) {
        n += detail::unlink_if_same(owned.first, owned.second) == 0 ? 1 : 0;
    }
    return n;
}

std::size_t free_all(const options& opt)
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
            const int err = detail::unlink_name(loc);
            if (err == 0 || err == ENOENT) { // ENOENT: someone else removed it meanwhile
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
#endif // NDSHM_DEFINITIONS

#endif
