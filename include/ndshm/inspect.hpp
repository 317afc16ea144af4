/// @file inspect.hpp
/// Listing, inspecting and garbage-collecting segments: what the `ndshm` command-line tool is built on.
///
/// Everything here reads segments with pread and never maps them, treats their bytes as hostile, and
/// only ever looks at (and removes) segments of the calling user: names that start with `ndshm_` in
/// one namespace, POSIX shared memory (/dev/shm) or the directory backend (options::directory, else
/// $NDSHM_DIR).
#ifndef NDSHM_INSPECT_HPP
#define NDSHM_INSPECT_HPP

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "detail/channel_format.hpp"
#include "detail/collection_format.hpp"
#include "detail/config.hpp"
#include "detail/inspect_segment.hpp"
#include "detail/npy.hpp"
#include "detail/object_format.hpp"
#include "detail/queue_format.hpp"
#include "detail/segment_impl.hpp"
#include "detail/sys.hpp"
#include "detail/trailer.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "options.hpp"
#include "segment.hpp"

namespace ndshm {

/// What a segment holds, as far as its bytes tell.
enum class segment_kind : std::uint8_t {
    array,       ///< an ndshm array: a published `.npy` with ndshm's trailer (trailer kind 1)
    object,      ///< an ndshm composite object (trailer kind 2)
    channel,     ///< an ndshm loan/publish channel (trailer kind 3)
    queue,       ///< an ndshm array queue (trailer kind 4)
    dict,        ///< an ndshm shared_dict's table (trailer kind 5); its entries are arrays of their own
    list,        ///< an ndshm shared_list's table (trailer kind 6); its entries are arrays of their own
    foreign_npy, ///< a `.npy` without ndshm's trailer, made by NumPy or another tool; never collected
    unfinished,  ///< its creator has not published it: still being written, or the creator died meanwhile
    corrupt,     ///< neither a valid ndshm segment nor a valid `.npy`; `problem` says why
    unreadable,  ///< it could not be opened or read; `problem` says why
    other,       ///< a file under a name not starting with `ndshm_` that is neither a `.npy` nor an ndshm
                 ///< segment (another program's shared memory; list_segments shows it with list_options::all)
};

/// "array", "object", "channel", "queue", "dict", "list", "foreign npy", "unfinished", "corrupt",
/// "unreadable" or "other".
constexpr const char* kind_name(segment_kind k) noexcept
{
    switch (k) {
    case segment_kind::array:
        return "array";
    case segment_kind::object:
        return "object";
    case segment_kind::channel:
        return "channel";
    case segment_kind::queue:
        return "queue";
    case segment_kind::dict:
        return "dict";
    case segment_kind::list:
        return "list";
    case segment_kind::foreign_npy:
        return "foreign npy";
    case segment_kind::unfinished:
        return "unfinished";
    case segment_kind::corrupt:
        return "corrupt";
    case segment_kind::other:
        return "other";
    case segment_kind::unreadable:
        break;
    }
    return "unreadable";
}

/// Whether the process that created a segment still runs.
enum class creator_status : std::uint8_t {
    unknown, ///< no trailer, or the trailer names no usable pid, or this system cannot tell
    alive,   ///< a process with that pid and that start time runs
    dead,    ///< no such process, a zombie, or the pid now belongs to a process started at another time
};

/// "unknown", "alive" or "dead".
constexpr const char* status_name(creator_status s) noexcept
{
    return s == creator_status::alive ? "alive" : s == creator_status::dead ? "dead" : "unknown";
}

/// ndshm's trailer as found in a segment (see the README for the layout).
struct trailer_info {
    std::uint64_t offset = 0;        ///< where the trailer starts in the segment
    std::uint32_t version = 0;       ///< trailer format version (1)
    std::uint32_t kind = 0;          ///< 1 array, 2 composite object, 3 channel, 4 queue, 5 dict, 6 list
    bool ready = false;              ///< state: published (1) rather than being written (0)
    std::uint32_t flags = 0;         ///< raw flags: bit 0 persisted, bit 1 lock
    bool persisted = false;          ///< persist() was called: gc keeps it
    std::uint32_t creator_uid = 0;   ///< effective uid of the creator
    std::uint64_t creator_pid = 0;   ///< pid of the creator
    std::uint64_t creator_start = 0; ///< the creator's start time, clock ticks since boot (0: unknown)
    std::uint64_t data_offset = 0;   ///< first data byte, as the trailer records it
    std::uint64_t data_bytes = 0;    ///< data length, as the trailer records it
    std::uint64_t created_ns = 0;    ///< creation time, nanoseconds since the epoch
    bool has_lock = false;           ///< flag bit 1: the trailer holds ndshm's per-array lock
};

/// What a check of a segment's internals found (inspect() does it, `ndshm info` shows it): the lock
/// in the trailer; a queue's control block, ring and queued arrays; a channel's control block, slot
/// records and ring; a composite object's header, table of contents and extents; a dict's or list's
/// table, index and entry segments. Read with pread, never mapped, trusting nothing.
struct internals_report {
    bool checked = false;              ///< internals were looked at
    std::vector<std::string> problems; ///< what is wrong, one sentence each (empty: all is well)
    std::vector<std::string> notes;    ///< what was found: counts, states, the lock's holder
};

/// What a queue, channel or composite object holds, in brief: what `ndshm ls` shows instead of their
/// `uint8` layout. list_segments and inspect fill it from the segment's control block or object header
/// (a few hundred bytes read, nothing checked beyond what the numbers need: see internals_report).
struct contents_summary {
    bool known = false; ///< the kind has a summary and its numbers could be read
    std::string text;   ///< e.g. "3 of 16 queued", "2 of 8 slots in use", "4 arrays, a blob of 120 bytes"
    /// The same as numbers, in a fixed order per kind, e.g. {"queued", 3}, {"capacity", 16}.
    std::vector<std::pair<std::string, std::uint64_t>> counts;
};

/// Everything ndshm can tell about one segment without mapping it.
struct segment_info {
    std::string name;
    std::string directory; ///< the directory backend it lives in; empty for POSIX shared memory
    std::string path;      ///< where it is visible as a file: /dev/shm/NAME or DIRECTORY/NAME
    segment_kind kind = segment_kind::unreadable;
    std::string problem; ///< why it is unfinished, corrupt or unreadable; empty otherwise

    std::uint64_t bytes = 0;      ///< size of the segment
    std::uint32_t mode = 0;       ///< permission bits
    std::uint32_t uid = 0;        ///< owner
    std::int64_t modified_ns = 0; ///< last modification, nanoseconds since the epoch

    bool has_header = false; ///< a `.npy` header was read; the five members below are valid
    ndshm::dtype dtype = ndshm::dtype::float64;
    std::vector<std::size_t> shape;
    bool fortran_order = false;
    std::uint64_t data_offset = 0;
    std::uint64_t data_bytes = 0;

    std::optional<trailer_info> trailer; ///< ndshm's trailer, if the segment has one
    creator_status creator = creator_status::unknown;
    std::string creator_detail; ///< how the creator's status was found, e.g. "no process 1234"

    bool users_known = false;        ///< `users` was looked up (see inspect()), and is complete
    std::vector<std::int64_t> users; ///< pids of the processes seen to have it open or mapped
    std::string users_detail;        ///< why `users` may be incomplete, if it was looked up (see processes_using)

    internals_report internals; ///< a check of its internals (inspect() only; list_segments leaves it empty)

    std::uint64_t allocated = 0; ///< bytes of storage it takes (st_blocks x 512; less than `bytes` if sparse)
    contents_summary contents;   ///< what a queue, channel or object holds (see contents_summary)

    /// True if persist() was called on it (only ndshm segments can be persisted).
    bool persisted() const noexcept { return trailer && trailer->persisted; }
    /// Creation time from the trailer, else the last modification; nanoseconds since the epoch.
    std::int64_t created_ns() const noexcept
    {
        return trailer && trailer->created_ns != 0 && trailer->created_ns <= std::uint64_t(INT64_MAX)
                   ? static_cast<std::int64_t>(trailer->created_ns)
                   : modified_ns;
    }
};

/// One segment that gc removed, or would remove.
struct gc_entry {
    segment_info segment;
    std::string reason; ///< why it is garbage
    bool removed = false;
    std::string error; ///< why it could not be removed, if it could not
};

/// Why gc removes `s`, or an empty string if it keeps it. gc removes only ndshm segments of the
/// calling user that nobody can use any more:
/// - a published array, object, channel, queue, dict or list whose creator is dead and that was not
///   persisted (a dict's or list's entries name its creator as theirs, so they go with it);
/// - an unfinished segment whose creator (named in its trailer) is dead;
/// - an unfinished segment without a trailer yet (its creator died before writing one) that no process
///   has open or mapped (`s.users_known` and `s.users` empty).
/// It keeps foreign `.npy` files, corrupt and unreadable segments, persisted ones, and every segment
/// whose creator is alive or cannot be identified. The "creator" is the process the trailer names:
/// the one that made the segment, or the one it was handed to since (array_queue, pool).
NDSHM_DECL std::string gc_reason(const segment_info& s);

/// Why gc cannot decide whether `s` is garbage, or an empty string. gc keeps such a segment and says
/// so: it would be garbage if its creator were known to be dead (or, for an unfinished segment without
/// a trailer, if no process were known to have it open), but that could not be told, for example
/// because /proc could not be read for want of a descriptor.
NDSHM_DECL std::string gc_doubt(const segment_info& s);

/// Everything wrong with a segment, as inspect() found it: corrupt or unreadable, unfinished with a dead
/// creator, or problems in its internals. Empty: healthy (`ndshm info` then exits 0, else 5).
NDSHM_DECL std::vector<std::string> segment_problems(const segment_info& s);

/// Inspects the segment `name` (in POSIX shared memory, or in the directory backend of `opt`), without
/// mapping it, looks up which processes have it open or mapped, and checks its internals
/// (`internals`: the lock; a queue's ring and queued arrays; a channel's slots and ring; an object's
/// table of contents). segment_problems() lists everything found wrong.
/// @throws not_found if there is no such segment, permission_denied if it belongs to another user
/// (unless options::allow_other_users), error for an invalid name. A segment that cannot be read or
/// parsed is not an error: its kind says unreadable or corrupt, and `problem` says why.
NDSHM_DECL segment_info inspect(const std::string& name, const options& opt = {});

/// What list_segments lists and looks up, beyond its default.
struct list_options {
    /// Every regular file of the calling user in the namespace, not only names starting with `ndshm_`
    /// (like `ls -a`): segments named through options::name, `.npy` files NumPy made, and other
    /// programs' files (kind other).
    bool all = false;
    /// Look up `users` (the processes that have it open or mapped) for every segment, in one walk over
    /// /proc, rather than only for unfinished segments without a trailer.
    bool users = false;
};

/// Lists the calling user's ndshm segments (names starting with `ndshm_`; with `what.all`, every file
/// of the user) in POSIX shared memory, or in the directory backend of `opt` (options::directory, else
/// $NDSHM_DIR), sorted by name. Segments that cannot be read or parsed are listed with kind unreadable
/// or corrupt. For unfinished segments without a trailer, `users` is looked up as well (gc needs it);
/// for the others only with `what.users`.
/// @throws error (or the subclass that fits) if the directory cannot be listed
NDSHM_DECL std::vector<segment_info> list_segments(const options& opt, const list_options& what);

/// Lists the calling user's ndshm segments: list_segments(opt, list_options{}).
inline std::vector<segment_info> list_segments(const options& opt = {}) { return list_segments(opt, list_options{}); }

/// Removes the calling user's segments that nobody can use any more (see gc_reason) from POSIX shared
/// memory, or from the directory backend of `opt`. Each one is inspected again right before it is
/// removed, so a segment that was published, persisted or handed to a live process meanwhile stays.
/// Processes that have a removed segment mapped keep their mappings. With `dry_run`, removes nothing
/// and returns what it would remove. A segment whose fate cannot be decided (see gc_doubt: /proc could
/// not be read, say, for want of a descriptor) is kept, never removed; if `undecided` is given, those
/// segments are added to it, each with the reason.
/// @returns the segments removed (or that would be); entries whose removal failed carry `error`
/// @throws error (or the subclass that fits) if the directory cannot be listed
NDSHM_DECL std::vector<gc_entry> gc(const options& opt = {}, bool dry_run = false,
                                    std::vector<gc_entry>* undecided = nullptr);

} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm {

std::string gc_reason(const segment_info& s) { return detail::judge_garbage(s).garbage; }

std::string gc_doubt(const segment_info& s) { return detail::judge_garbage(s).doubt; }

std::vector<std::string> segment_problems(const segment_info& s)
{
    std::vector<std::string> out;
    if (s.kind == segment_kind::corrupt || s.kind == segment_kind::unreadable) {
        out.push_back(s.problem.empty() ? std::string(kind_name(s.kind)) : s.problem);
    } else if (s.kind == segment_kind::unfinished && s.creator == creator_status::dead) {
        out.push_back("unfinished, and its creator is dead (" + s.creator_detail + ")");
    } else if (!s.problem.empty()) {
        out.push_back(s.problem);
    }
    out.insert(out.end(), s.internals.problems.begin(), s.internals.problems.end());
    return out;
}

segment_info inspect(const std::string& name, const options& opt)
{
    std::pair<std::uint64_t, std::uint64_t> id{0, 0};
    return detail::inspect_with_users(name, opt, id, nullptr, true);
}

std::vector<segment_info> list_segments(const options& opt, const list_options& what)
{
    const std::string dir = detail::backend_dir(opt);
    std::vector<std::string> names;
    if (!(what.all ? detail::list_user_files("list segments in", detail::namespace_path(opt), names)
                   : detail::list_user_segments("list segments in", detail::namespace_path(opt), names))) {
        return {};
    }
    std::sort(names.begin(), names.end());
    std::vector<segment_info> out;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> orphans;
    std::vector<std::size_t> orphan_index;
    detail::proc_cache creators;
    for (const auto& name : names) {
        std::pair<std::uint64_t, std::uint64_t> id{0, 0};
        try {
            out.push_back(detail::inspect_location({dir, name}, opt, id, &creators));
        } catch (const not_found&) {
            continue; // removed since the directory was read
        } catch (const error& e) {
            segment_info s;
            s.name = name;
            s.directory = dir;
            s.path = detail::file_path({dir, name});
            s.kind = segment_kind::unreadable;
            s.problem = e.what();
            out.push_back(std::move(s));
            continue;
        }
        if ((what.users || (out.back().kind == segment_kind::unfinished && !out.back().trailer)) && id.second != 0) {
            orphans.push_back(id);
            orphan_index.push_back(out.size() - 1);
        }
    }
    std::vector<std::vector<std::int64_t>> users;
    if (!orphans.empty()) {
        const std::string why = detail::processes_using(orphans, users);
        for (std::size_t i = 0; i < orphans.size(); ++i) {
            out[orphan_index[i]].users_known = why.empty();
            out[orphan_index[i]].users_detail = why;
            out[orphan_index[i]].users = std::move(users[i]);
        }
    }
    return out;
}

std::vector<gc_entry> gc(const options& opt, bool dry_run, std::vector<gc_entry>* undecided)
{
    std::vector<gc_entry> out;
    const auto doubt = [&](segment_info& s, std::string why) {
        if (undecided != nullptr && !why.empty()) {
            undecided->push_back(gc_entry{std::move(s), std::move(why), false, {}});
        }
    };
    for (auto& s : list_segments(opt)) {
        std::string reason = gc_reason(s);
        if (reason.empty()) {
            doubt(s, gc_doubt(s));
            continue;
        }
        const detail::location loc = detail::location_for(s.name, opt);
        std::pair<std::uint64_t, std::uint64_t> seen{0, 0}; // the file judged garbage: only it may go
        detail::fd_guard held; // and held open until then, so that its inode cannot pass to a new file
        if (!dry_run) {
            try {
                segment_info again = detail::inspect_with_users(s.name, opt, seen, &held);
                reason = gc_reason(again);
                if (reason.empty()) {
                    doubt(again, gc_doubt(again));
                    continue; // published, persisted or picked up meanwhile, or no longer decidable
                }
                s = std::move(again);
            } catch (const not_found&) {
                continue; // removed meanwhile
            } catch (const error& e) {
                doubt(s, std::string("could not inspect it again before removing it (") + e.what() + ")");
                continue;
            }
        }
        gc_entry e{std::move(s), std::move(reason), false, {}};
        if (!dry_run) {
            const int err = detail::unlink_if_same(loc, detail::file_id{seen.first, seen.second});
            if (err == 0) {
                e.removed = true;
                (void)detail::session().remove(loc);
            } else if (err == ENOENT || err == ESTALE) {
                continue; // removed meanwhile by someone else, or a new segment has the name now
            } else {
                e.error = std::string(detail::unlink_call(loc)) + " failed: " + std::generic_category().message(err);
            }
        }
        out.push_back(std::move(e));
    }
    return out;
}

} // namespace ndshm
#endif // NDSHM_DEFINITIONS

#endif
