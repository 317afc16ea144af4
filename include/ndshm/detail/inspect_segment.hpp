/// @file detail/inspect_segment.hpp
/// Inspecting one segment by its location, without mapping it: open and stat it (refusing another
/// user's), classify it, summarise its contents, check its internals, judge whether its creator runs
/// and, with the processes that use it, whether gc may remove it. inspect.hpp's records are template
/// parameters here (`Info` is ndshm::segment_info, declared below, the default where a function returns
/// one), so that this header does not depend on the public one.
#ifndef NDSHM_DETAIL_INSPECT_SEGMENT_HPP
#define NDSHM_DETAIL_INSPECT_SEGMENT_HPP

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../options.hpp"
#include "inspect_classify.hpp"
#include "inspect_internals.hpp"
#include "inspect_summary.hpp"
#include "inspect_users.hpp"
#include "liveness.hpp"
#include "segment_location.hpp"
#include "segment_names.hpp"
#include "segment_open.hpp"
#include "sys.hpp"
#include "trailer.hpp"

namespace ndshm {
struct segment_info; // inspect.hpp
} // namespace ndshm

namespace ndshm::detail {

/// Whether the creator of `s`, which its trailer records, still runs, by the positive-evidence rule of
/// detail/liveness.hpp: dead only if no process has the pid, it is a zombie, or it has another start
/// time than the one recorded (so a reused pid does not pass for the creator); unknown whenever that
/// cannot be told (for instance /proc cannot be read for want of a descriptor), or without a trailer
/// this ndshm reads. Sets `s.creator` and says how in `s.creator_detail`.
template <class Info>
void judge_creator(Info& s, proc_cache* cache)
{
    using creator_status = decltype(Info::creator);
    if (!s.trailer || s.trailer->version != trailer_version) {
        s.creator_detail = s.trailer ? "the trailer's version is unknown" : "no ndshm trailer: the creator is unknown";
        return;
    }
    const process_check c = check_process(s.trailer->creator_pid, s.trailer->creator_start, cache);
    s.creator_detail = c.detail;
    switch (c.state) {
    case liveness::alive:
        s.creator = creator_status::alive;
        return;
    case liveness::dead:
        s.creator = creator_status::dead;
        return;
    case liveness::unknown:
        break;
    }
    s.creator = creator_status::unknown;
}

/// Inspects the segment at `loc`. Throws not_found if there is none, permission_denied if it belongs
/// to another user (unless opt.allow_other_users), error for an invalid name; everything else ends up
/// in the result (unreadable, corrupt, ...). Sets `dev_ino` to the file's identity; with `keep`, hands
/// over the open descriptor, so that the caller can act on this very file (see gc). With `deep`, checks
/// its internals too.
template <class Info = segment_info>
Info inspect_location(const location& loc, const options& opt, std::pair<std::uint64_t, std::uint64_t>& dev_ino,
                      proc_cache* cache = nullptr, fd_guard* keep = nullptr, bool deep = false)
{
    using segment_kind = kind_of<Info>;
    const std::string op = "inspect";
    Info s;
    s.name = loc.name;
    s.directory = loc.dir;
    s.path = file_path(loc);
    // Records size, mode, owner and age from `st`; refuses another user's file.
    const auto take_stat = [&](const struct stat& st) {
        s.bytes = static_cast<std::uint64_t>(st.st_size);
        s.mode = static_cast<std::uint32_t>(st.st_mode & 07777);
        s.uid = static_cast<std::uint32_t>(st.st_uid);
        s.modified_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        if (st.st_uid != current_uid() && !opt.allow_other_users) {
            raise<permission_denied>(op, loc.name, owned_by_other("the segment", st.st_uid),
                                     "ndshm only looks at the calling user's segments; run as that user, or set "
                                     "options::allow_other_users",
                                     errno_code(EACCES));
        }
    };
    // O_NONBLOCK: a FIFO planted under the name must not block the open.
    fd_guard fd(open_location(loc, O_RDONLY | O_NONBLOCK, 0));
    if (fd.get() < 0) {
        const int err = errno;
        if (err == ENOENT) {
            raise_errno(op, loc.name, err, open_call(loc));
        }
        s.kind = segment_kind::unreadable;
        s.problem = err == ELOOP ? std::string("a symbolic link, not a segment")
                                 : "cannot open it: " + std::generic_category().message(err);
        struct stat st {};
        if (sys().fstatat(AT_FDCWD, s.path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            take_stat(st);
        }
        return s;
    }
    struct stat st {};
    if (retry_eintr([&] { return sys().fstat(fd.get(), &st); }) != 0) {
        s.kind = segment_kind::unreadable;
        s.problem = "fstat failed: " + std::generic_category().message(errno);
        return s;
    }
    dev_ino = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    take_stat(st);
    s.allocated = static_cast<std::uint64_t>(st.st_blocks) * 512;
    if (!S_ISREG(st.st_mode)) {
        s.kind = segment_kind::unreadable;
        s.problem = "not a regular file";
        return s;
    }
    try {
        analyze_segment(s, static_cast<std::size_t>(st.st_size), [&](std::size_t off, void* out, std::size_t n) {
            return read_at(fd.get(), out, n, off, op, loc.name);
        });
    } catch (const error& e) {
        s.kind = segment_kind::unreadable;
        s.problem = e.what();
    }
    const auto read_inside = [&](std::uint64_t off, void* out, std::size_t n) {
        return off > s.bytes ? std::size_t(0) : read_at(fd.get(), out, n, static_cast<std::size_t>(off), op, loc.name);
    };
    summarize_contents(s, read_inside);
    if (deep && s.problem.empty()) {
        check_internals(s, read_inside);
    }
    judge_creator(s, cache);
    if (keep != nullptr) {
        *keep = std::move(fd); // holds the file: its inode cannot go to another file meanwhile
    }
    return s;
}

/// Where the segment `name` lives for `opt`: the POSIX namespace or the directory backend.
inline location location_for(const std::string& name, const options& opt) { return {backend_dir(opt), name}; }

/// The directory where the segments of `opt`'s namespace are visible as files: /dev/shm or the backend.
inline std::string namespace_path(const options& opt) { return namespace_dir(backend_dir(opt)); }

/// inspect(), and the identity (device, inode) of the file inspected in `id`; with `keep`, its open
/// descriptor too; with `deep`, a check of its internals.
template <class Info = segment_info>
Info inspect_with_users(const std::string& name, const options& opt, std::pair<std::uint64_t, std::uint64_t>& id,
                        fd_guard* keep = nullptr, bool deep = false)
{
    check_name("inspect", name);
    Info s = inspect_location<Info>(location_for(name, opt), opt, id, nullptr, keep, deep);
    std::vector<std::vector<std::int64_t>> users;
    if (id.second != 0) {
        s.users_detail = processes_using({id}, users, keep != nullptr ? keep->get() : -1);
        s.users_known = s.users_detail.empty();
        s.users = std::move(users[0]);
    }
    return s;
}

/// gc's verdict on a segment: why it is garbage, or why that cannot be decided (at most one is set;
/// neither: gc keeps it, and that is all there is to say). See gc_reason and gc_doubt (inspect.hpp).
struct gc_verdict {
    std::string garbage;
    std::string doubt;
};

/// gc's verdict on `s` (an ndshm::segment_info): gc_reason and gc_doubt in one place.
template <class Info>
gc_verdict judge_garbage(const Info& s)
{
    using segment_kind = kind_of<Info>;
    using creator_status = decltype(Info::creator);
    gc_verdict v;
    if (s.uid != current_uid() || s.name.rfind(name_prefix, 0) != 0) {
        return v;
    }
    switch (s.kind) {
    case segment_kind::array:
    case segment_kind::object:
    case segment_kind::channel:
    case segment_kind::queue:
    case segment_kind::dict:
    case segment_kind::list:
        if (s.persisted()) {
            return v;
        }
        if (s.creator == creator_status::dead) {
            v.garbage = "its creator is dead (" + s.creator_detail + ") and it was not persisted";
        } else if (s.creator == creator_status::unknown) {
            v.doubt = "could not tell whether its creator runs (" + s.creator_detail + ")";
        }
        return v;
    case segment_kind::unfinished:
        if (s.trailer) {
            if (s.creator == creator_status::dead) {
                v.garbage = "unfinished, and its creator is dead (" + s.creator_detail + ")";
            } else if (s.creator == creator_status::unknown) {
                v.doubt = "unfinished, and could not tell whether its creator runs (" + s.creator_detail + ")";
            }
            return v;
        }
        if (s.users_known && s.users.empty()) {
            v.garbage = "unfinished, without a trailer naming its creator, and no process has it open or mapped "
                        "(its creator died while creating it)";
        } else if (!s.users_known && s.users.empty()) {
            v.doubt = "unfinished without a trailer, and could not tell whether a process has it open or mapped (" +
                      (s.users_detail.empty() ? std::string("not looked up") : s.users_detail) + ")";
        }
        return v;
    case segment_kind::unreadable:
        v.doubt = "could not read it (" + s.problem + ")";
        return v;
    case segment_kind::foreign_npy:
    case segment_kind::corrupt:
    case segment_kind::other:
        break;
    }
    return v;
}

} // namespace ndshm::detail

#endif
