/// @file detail/segment_create.hpp
/// Creating a segment: exclusively, under a chosen or a generated name, with exactly the requested
/// mode, its space reserved, mapped read-write and owned by this process; nothing is left behind if a
/// step fails.
#ifndef NDSHM_DETAIL_SEGMENT_CREATE_HPP
#define NDSHM_DETAIL_SEGMENT_CREATE_HPP

#include <cerrno>
#include <cstddef>
#include <memory>
#include <string>

#include "../error.hpp"
#include "config.hpp"
#include "../options.hpp"
#include "mapping.hpp"
#include "segment_location.hpp"
#include "segment_names.hpp"
#include "segment_space.hpp"
#include "sys.hpp"

namespace ndshm::detail {

/// Creates a new segment of `total` bytes exclusively, reserves its space, maps it read-write and
/// returns it registered as owned by this process. The magic is not yet published. Nothing is left
/// behind if any step fails.
NDSHM_DECL std::shared_ptr<mapping> create_segment(const options& opt, std::size_t total, const std::string& op);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

std::shared_ptr<mapping> create_segment(const options& opt, std::size_t total, const std::string& op)
{
    location loc{backend_dir(opt), segment_name(opt.name)};
    const bool generated = loc.name.empty();
    if (!generated) {
        check_name(op, loc.name);
    }
    if ((opt.mode & ~0777u) != 0) {
        raise<error>(op, loc.name, "mode " + std::to_string(opt.mode) + " has bits outside 0777",
                     "pass permission bits only, such as 0600", errno_code(EINVAL));
    }
    fd_guard fd;
    for (int attempt = 0;; ++attempt) {
        if (generated) {
            loc.name = generate_name(op);
        }
        fd = fd_guard(open_location(loc, O_RDWR | O_CREAT | O_EXCL, static_cast<mode_t>(opt.mode)));
        if (fd.get() >= 0) {
            break;
        }
        const int err = errno;
        if (!(generated && err == EEXIST && attempt < 8)) {
            raise_errno(op, loc.name, err, open_call(loc));
        }
    }
    // From here on the name exists: any failure removes it again (while it is still this file).
    struct unlink_on_failure {
        const location& l;
        file_id id;
        bool armed = true;
        ~unlink_on_failure()
        {
            if (armed) {
                (void)unlink_if_same(l, id);
            }
        }
    } cleanup{loc, {}};
    struct stat created {};
    if (retry_eintr([&] { return sys().fstat(fd.get(), &created); }) != 0) {
        raise_errno(op, loc.name, errno, "fstat");
    }
    cleanup.id = id_of(created);

    // Exactly the requested mode, whatever the umask.
    if (retry_eintr([&] { return sys().fchmod(fd.get(), static_cast<mode_t>(opt.mode)); }) != 0) {
        raise_errno(op, loc.name, errno, "fchmod");
    }
    const std::size_t avail = free_bytes(fd.get());
    if (total > avail) {
        raise_out_of_space(op, loc, total, avail, ENOSPC);
    }
    if (retry_eintr([&] { return sys().ftruncate(fd.get(), static_cast<off_t>(total)); }) != 0) {
        const int err = errno;
        if (err == ENOSPC || err == EFBIG) {
            raise_out_of_space(op, loc, total, free_bytes(fd.get()), err);
        }
        raise_errno(op, loc.name, err, "ftruncate");
    }
    // ftruncate only sets the size; without reserving the pages a full tmpfs would SIGBUS on first touch.
    int err = 0;
    do {
        err = sys().posix_fallocate(fd.get(), 0, static_cast<off_t>(total));
    } while (err == EINTR);
    if (err == ENOSPC || err == EFBIG) {
        raise_out_of_space(op, loc, total, free_bytes(fd.get()), err);
    }
    if (err != 0 && err != EOPNOTSUPP) { // EOPNOTSUPP: a file system that cannot reserve; mapping still works
        raise_errno(op, loc.name, err, "posix_fallocate");
    }
    unsigned char* base = map_fd(fd.get(), total, true, opt.populate, op, loc.name);
    auto m = std::make_shared<mapping>(loc, base, total, true);
    m->set_id(cleanup.id);
    m->own();
    cleanup.armed = false;
    return m;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
