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
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <dirent.h>
#ifndef _WIN32
#include <signal.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#endif

#include "detail/channel_format.hpp"
#include "detail/collection_format.hpp"
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

namespace detail {

/// Bytes read from the start of a segment to find its .npy header: as much as attach accepts.
inline constexpr std::size_t inspect_head_limit = head_limit;

inline std::int64_t now_ns() noexcept
{
    struct timespec ts {};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

/// Classifies a segment of `size` bytes from its contents, read through `read(offset, out, n)`
/// (returns the number of bytes read, fewer at the end). Fills kind, problem, the header fields and
/// the trailer of `s`. Trusts nothing it reads. Exceptions of `read` propagate.
template <class Read>
void analyze_segment(segment_info& s, std::size_t size, Read&& read)
{
    s.bytes = size;
    s.kind = segment_kind::corrupt;
    if (size == 0 && s.name.rfind(name_prefix, 0) != 0) {
        s.kind = segment_kind::other; // an empty file under another program's name
        return;
    }
    if (size == 0) {
        s.kind = segment_kind::unfinished;
        s.problem = "empty: its creator has not sized it yet (still creating it, or it died meanwhile)";
        return;
    }
    // The first page holds every header ndshm writes; NumPy's are shorter still.
    std::vector<unsigned char> head(std::min<std::size_t>(size, 4096));
    head.resize(read(0, head.data(), head.size()));
    const std::size_t magic_bytes = std::min<std::size_t>(head.size(), sizeof npy_magic);
    const bool published = magic_bytes == sizeof npy_magic && std::memcmp(head.data(), npy_magic, magic_bytes) == 0;
    const bool pending = unpublished(head.data(), magic_bytes);
    // An unpublished .npy: its header is written, all but the magic's first byte.
    const bool pending_npy = pending && magic_bytes == sizeof npy_magic &&
                             std::memcmp(head.data() + 1, npy_magic + 1, sizeof npy_magic - 1) == 0;

    npy_info info;
    std::string header_problem;
    if ((published || pending_npy) && head.size() >= 12) {
        const unsigned char* h = head.data();
        const std::size_t prefix = h[6] >= 2 ? 12 : 10;
        std::size_t hlen = std::size_t(h[8]) | std::size_t(h[9]) << 8;
        if (prefix == 12) {
            hlen |= std::size_t(h[10]) << 16 | std::size_t(h[11]) << 24;
        }
        const std::size_t want = std::min({size, inspect_head_limit, prefix + hlen});
        if (want > head.size()) {
            const std::size_t had = head.size();
            head.resize(want);
            head.resize(had + read(had, head.data() + had, want - had));
        }
        head[0] = static_cast<unsigned char>(npy_magic[0]);
        try {
            info = parse_npy(head.data(), head.size(), s.name, size);
            s.has_header = true;
            s.dtype = info.type;
            s.shape = info.shape;
            s.fortran_order = info.fortran_order;
            s.data_offset = info.data_offset;
            s.data_bytes = info.nbytes;
        } catch (const format_error& e) {
            header_problem = e.what();
        }
    } else if (published || pending_npy) {
        header_problem = "truncated: the .npy header is cut short";
    }

    // ndshm's trailer follows the data that the .npy header describes (arrays, and objects, channels
    // and queues, which are .npy files of bytes); without a readable header, the last 256 bytes.
    std::size_t off = SIZE_MAX;
    if (s.has_header) {
        off = trailer_offset_in(info, size);
    } else if (size >= sizeof(trailer)) {
        off = size - sizeof(trailer);
    }
    trailer t{};
    if (off != SIZE_MAX && read(off, &t, sizeof t) == sizeof t &&
        std::memcmp(t.magic, trailer_magic, sizeof trailer_magic) == 0) {
        trailer_info ti;
        ti.offset = off;
        ti.version = t.version;
        ti.kind = t.kind;
        ti.ready = t.state == state_ready;
        ti.flags = t.flags;
        ti.persisted = (t.flags & flag_persisted) != 0;
        ti.creator_uid = t.uid;
        ti.creator_pid = t.creator_pid;
        ti.creator_start = t.creator_start;
        ti.data_offset = t.data_offset;
        ti.data_bytes = t.data_bytes;
        ti.created_ns = t.created_ns;
        ti.has_lock = (t.flags & (1u << 1)) != 0; // flag_lock in detail/trailer.hpp
        s.trailer = ti;
        if (t.version != trailer_version || t.size != sizeof(trailer)) {
            s.problem = "trailer format version " + std::to_string(t.version) + " (size " + std::to_string(t.size) +
                        ") is not the one this ndshm reads (version " + std::to_string(trailer_version) +
                        "); use the ndshm version that made it";
            return;
        }
        if (pending || t.state != state_ready) {
            s.kind = segment_kind::unfinished;
            s.problem = "unfinished: its creator has not published it (still writing it, or it died meanwhile)";
            return;
        }
        // Every kind ndshm makes is a .npy (objects, channels and queues as bytes) followed by the
        // trailer, which must agree with the header; an array must have that header.
        if (s.has_header) {
            try {
                check_trailer(t, info, s.name, "inspect");
            } catch (const format_error& e) {
                s.problem = e.what();
                return;
            }
        } else if (t.kind == kind_array) {
            s.problem = header_problem.empty() ? "an array segment without a .npy header" : header_problem;
            return;
        }
        switch (t.kind) {
        case kind_array:
            s.kind = segment_kind::array;
            return;
        case kind_object:
            s.kind = segment_kind::object;
            return;
        case 3: // kind_channel in detail/trailer.hpp
            s.kind = segment_kind::channel;
            return;
        case 4: // kind_queue in detail/trailer.hpp
            s.kind = segment_kind::queue;
            return;
        case kind_dict:
            s.kind = segment_kind::dict;
            return;
        case kind_list:
            s.kind = segment_kind::list;
            return;
        default:
            s.problem = "the trailer names an unknown kind " + std::to_string(t.kind) + "; a newer ndshm made it";
            return;
        }
    }
    // Zeros under a name that is not ndshm's are more likely another program's file than a segment of
    // ndshm's in the instant between its sizing and its header.
    const bool ndshm_name = s.name.rfind(name_prefix, 0) == 0;
    if (pending && (ndshm_name || pending_npy)) {
        s.kind = segment_kind::unfinished;
        s.problem = "unfinished: its creator has not published it and has not written ndshm's trailer yet (still "
                    "creating it, or it died meanwhile)";
        return;
    }
    if (s.has_header) {
        s.kind = segment_kind::foreign_npy;
        return;
    }
    if (!published && !pending_npy && !ndshm_name) {
        s.kind = segment_kind::other; // not ndshm's name, format or trailer: nothing is wrong with it
        return;
    }
    s.problem = !header_problem.empty() ? header_problem
                                        : "neither a .npy (no \\x93NUMPY magic) nor an ndshm segment (no trailer)";
}

/// Whether the process recorded in a trailer still runs, by the positive-evidence rule of
/// detail/liveness.hpp: dead only if no process has the pid, it is a zombie, or it has another start
/// time than the one recorded (so a reused pid does not pass for the creator); unknown whenever that
/// cannot be told (for instance /proc cannot be read for want of a descriptor).
inline creator_status creator_of(const trailer_info& t, std::string& detail_out, proc_cache* cache = nullptr)
{
    const process_check c = check_process(t.creator_pid, t.creator_start, cache);
    detail_out = c.detail;
    switch (c.state) {
    case liveness::alive:
        return creator_status::alive;
    case liveness::dead:
        return creator_status::dead;
    case liveness::unknown:
        break;
    }
    return creator_status::unknown;
}

/// True if the process `pid`, whose /proc entries this user may not read, could have this user's files
/// open: its effective or file-system uid (/proc/PID/status, readable by everyone) is this user's, or
/// that cannot be read.
inline bool may_be_this_users(const std::string& base)
{
    std::string status;
    if (read_proc_file((base + "/status").c_str(), status, 65536) != 0) {
        return true;
    }
    const std::size_t at = status.find("\nUid:");
    unsigned long real = 0, effective = 0, saved = 0, fs = 0;
    if (at == std::string::npos ||
        std::sscanf(status.c_str() + at + 5, "%lu %lu %lu %lu", &real, &effective, &saved, &fs) != 4) {
        return true;
    }
    const unsigned long me = current_uid();
    return effective == me || fs == me;
}

/// For each file (device, inode), the pids of the processes that have it open or mapped, from every
/// /proc/PID/fd and /proc/PID/maps. Returns an empty string if that walk saw everything it needed,
/// else why the answer is incomplete (then `users` holds the processes that were seen, and must not
/// be taken to mean "nobody else"): /proc cannot be listed, or an entry of a process that could hold
/// this user's files cannot be read (EMFILE, ENOMEM, EACCES for a process of this user that is not
/// dumpable, ...). Processes that end meanwhile, and processes of other users (whose entries only root
/// may read; they cannot open this user's private segments) are passed over, and so is this process's
/// descriptor `own_fd`.
inline std::string processes_using(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& files,
                                   std::vector<std::vector<std::int64_t>>& users, int own_fd = -1)
{
#ifdef _WIN32
    // Windows has no /proc to walk, and no call that lists the processes that map a file: the answer is
    // "unknown", so gc keeps what it would remove only on that evidence (unfinished segments without a
    // trailer), and says why.
    (void)own_fd;
    users.assign(files.size(), {});
    return "Windows cannot list the processes that have a file open or mapped";
#else
    const std::int64_t me = ::getpid();
    users.assign(files.size(), {});
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::size_t> index;
    for (std::size_t i = 0; i < files.size(); ++i) {
        index.emplace(files[i], i);
    }
    const auto failed = [](const std::string& what, int err) {
        return "cannot read " + what + ": " + std::generic_category().message(err);
    };
    DIR* proc = nullptr;
    do {
        proc = sys().opendir("/proc");
    } while (proc == nullptr && errno == EINTR);
    if (proc == nullptr) {
        return failed("/proc", errno);
    }
    std::vector<std::int64_t> pids;
    for (;;) {
        errno = 0;
        const dirent* e = sys().readdir(proc);
        if (e == nullptr) {
            const int err = errno;
            if (err == EINTR) {
                continue;
            }
            (void)sys().closedir(proc);
            if (err != 0) {
                return failed("/proc", err);
            }
            break;
        }
        char* end = nullptr;
        const long pid = std::strtol(e->d_name, &end, 10);
        if (pid > 0 && end != nullptr && *end == '\0') {
            pids.push_back(pid);
        }
    }
    std::string incomplete; // the first reason the walk missed something
    for (const std::int64_t pid : pids) {
        std::vector<bool> found(files.size(), false);
        const auto mark = [&](std::uint64_t dev, std::uint64_t ino) {
            const auto it = index.find({dev, ino});
            if (it != index.end() && !found[it->second]) {
                found[it->second] = true;
                users[it->second].push_back(pid);
            }
        };
        const std::string base = "/proc/" + std::to_string(pid);
        // An error reading a process's entries: it ended (skip it), it belongs to another user (skip
        // it), or the answer is unknown.
        const auto unreadable = [&](const std::string& what, int err) -> std::string {
            if (err == ENOENT || err == ESRCH || ((err == EACCES || err == EPERM) && !may_be_this_users(base))) {
                return {};
            }
            return failed(base + "/" + what, err);
        };
        DIR* fds = nullptr;
        do {
            fds = sys().opendir((base + "/fd").c_str());
        } while (fds == nullptr && errno == EINTR);
        if (fds == nullptr) {
            if (std::string why = unreadable("fd", errno); !why.empty() && incomplete.empty()) {
                incomplete = std::move(why);
            }
            continue;
        }
        std::string why;
        for (;;) {
            errno = 0;
            const dirent* e = sys().readdir(fds);
            if (e == nullptr) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno != 0) {
                    why = unreadable("fd", errno);
                }
                break;
            }
            if (e->d_name[0] == '.' || (pid == me && own_fd >= 0 && std::to_string(own_fd) == e->d_name)) {
                continue; // the caller's own descriptor of the file (see gc) is not a user
            }
            struct stat st {};
            if (retry_eintr([&] { return sys().fstatat(::dirfd(fds), e->d_name, &st, 0); }) == 0) {
                mark(static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino));
            } else if (errno != ENOENT) { // ENOENT: closed meanwhile
                why = unreadable(std::string("fd/") + e->d_name, errno);
                if (!why.empty()) {
                    break;
                }
            }
        }
        (void)sys().closedir(fds);
        if (!why.empty() && incomplete.empty()) {
            incomplete = std::move(why);
        }
        std::string maps;
        if (const int err = read_proc_file((base + "/maps").c_str(), maps); err != 0) {
            if (std::string w = unreadable("maps", err); !w.empty() && incomplete.empty()) {
                incomplete = std::move(w);
            }
            continue;
        }
        for (std::size_t pos = 0; pos < maps.size();) {
            std::size_t eol = maps.find('\n', pos);
            if (eol == std::string::npos) {
                eol = maps.size();
            }
            // start-end perms offset major:minor inode [path]
            const std::string line = maps.substr(pos, std::min<std::size_t>(eol - pos, 256));
            unsigned maj = 0, min = 0;
            unsigned long long ino = 0;
            if (std::sscanf(line.c_str(), "%*s %*s %*s %x:%x %llu", &maj, &min, &ino) == 3 && ino != 0) {
                mark(static_cast<std::uint64_t>(::makedev(maj, min)), ino);
            }
            pos = eol + 1;
        }
    }
    return incomplete;
#endif
}

/// Reads the 64 bytes of a lock at `off` and reports on it under the label `which`.
template <class Read>
void check_lock_at(internals_report& r, std::uint64_t off, const std::string& which, Read&& read)
{
    unsigned char bytes[lock_room] = {};
    if (read(off, bytes, sizeof bytes) != sizeof bytes) {
        r.problems.push_back(which + " lies beyond the end of the segment");
        return;
    }
    const lock_report l = describe_lock(bytes);
    if (!l.problem.empty()) {
        r.problems.push_back(which + " is corrupt: " + l.problem);
        return;
    }
    std::string note = which + ": ";
    if (!l.held) {
        note += "free";
    } else {
        note += "held by thread " + std::to_string(l.tid) +
                (l.pid != 0 ? " of process " + std::to_string(l.pid) : std::string()) + " (" + l.holder + ")";
        if (l.holder_state == liveness::dead) {
            r.problems.push_back(which + " is held by thread " + std::to_string(l.tid) + ", which is dead (" +
                                 l.holder +
                                 "); the next locker takes it over, and the data it guards may be "
                                 "half-updated");
        } else if (l.holder_stopped) {
            r.problems.push_back(which + " is held by thread " + std::to_string(l.tid) +
                                 ", which is stopped: untimed waits for it fail after 10 s; resume it (kill -CONT)");
        }
    }
    if (l.takeovers != 0) {
        note += "; taken over from a dead holder " + std::to_string(l.takeovers) + " time(s)";
    }
    r.notes.push_back(note);
}

/// The queue's control block, ring and queued arrays.
template <class Read>
void check_queue(internals_report& r, const segment_info& s, Read&& read)
{
    queue_control c{};
    if (s.data_bytes < sizeof c || read(s.data_offset, &c, sizeof c) != sizeof c) {
        r.problems.push_back("the queue's control block is missing");
        return;
    }
    if (std::memcmp(c.magic, queue_magic, sizeof c.magic) != 0 || c.version != queue_version ||
        c.entry_size != sizeof(queue_entry)) {
        r.problems.push_back("the queue's control block has an unknown magic, version or entry size");
        return;
    }
    if (c.capacity == 0 || c.capacity > queue_max_capacity || c.pool_records > queue_max_pool ||
        c.record_size != sizeof(queue_pool_record) ||
        queue_data_bytes(static_cast<std::size_t>(c.capacity), c.pool_records) > s.data_bytes) {
        r.problems.push_back("the queue's capacity (" + std::to_string(c.capacity) + ") and pool (" +
                             std::to_string(c.pool_records) + ") do not fit its " + std::to_string(s.data_bytes) +
                             " bytes");
        return;
    }
    const std::uint64_t head = queue_head(c.state), count = queue_count(c.state);
    r.notes.push_back("queue: capacity " + std::to_string(c.capacity) + ", " + std::to_string(count) + " queued, " +
                      std::to_string(c.pushed) + " pushed, " + std::to_string(c.popped) + " popped" +
                      (c.closed != 0 ? ", closed" : ""));
    if (head >= c.capacity || count > c.capacity) {
        r.problems.push_back("the queue's state is corrupt (head " + std::to_string(head) + ", count " +
                             std::to_string(count) + ", capacity " + std::to_string(c.capacity) + ")");
    } else {
        for (std::uint64_t i = 0; i < count; ++i) {
            const std::uint64_t slot = (head + i) % c.capacity;
            queue_entry e{};
            std::string name;
            ndshm::dtype type{};
            if (read(s.data_offset + sizeof c + slot * sizeof e, &e, sizeof e) != sizeof e ||
                !queue_entry_valid(e, name, type)) {
                r.problems.push_back("queued entry " + std::to_string(i) +
                                     " is corrupt (no valid name, dtype or identity)");
                continue;
            }
            struct stat st {};
            const std::string path = file_path(location{s.directory, name});
            if (retry_eintr([&] { return sys().fstatat(AT_FDCWD, path.c_str(), &st, AT_SYMLINK_NOFOLLOW); }) != 0) {
                r.problems.push_back("queued array '" + name + "' is gone (" + std::generic_category().message(errno) +
                                     "): a pop drops its entry");
            } else if (id_of(st) != file_id{e.dev, e.ino}) {
                r.problems.push_back("queued array '" + name +
                                     "' names another file now (removed and created again): a pop drops its entry");
            }
        }
    }
    if (c.closed > 1) {
        r.problems.push_back("the queue's closed flag holds " + std::to_string(c.closed));
    }
    // The recycling pool: how many segments are free, held and queued, and holders that are gone.
    std::size_t counts[4] = {0, 0, 0, 0};
    proc_cache cache;
    const std::uint64_t pool_at = s.data_offset + queue_data_bytes(static_cast<std::size_t>(c.capacity));
    for (std::uint32_t i = 0; i < c.pool_records; ++i) {
        queue_pool_record rec{};
        if (read(pool_at + std::uint64_t(i) * sizeof rec, &rec, sizeof rec) != sizeof rec) {
            r.problems.push_back("the queue's pool records are cut short");
            break;
        }
        if (rec.state > pool_queued) {
            r.problems.push_back("pool record " + std::to_string(i) + " has an unknown state " +
                                 std::to_string(rec.state));
            continue;
        }
        ++counts[rec.state];
        if (rec.state == pool_held) {
            const process_check p = check_process(rec.pid, rec.start, &cache);
            if (!valid_pid(rec.pid) || p.state == liveness::dead) {
                r.problems.push_back("pooled segment " + std::to_string(i) + " is held by a process that is gone (" +
                                     p.detail + "): `ndshm gc` removes it, and the next make() forgets it");
            }
        }
    }
    if (c.pool_records != 0) {
        r.notes.push_back("pool: " + std::to_string(c.pool_records) + " records: " + std::to_string(counts[pool_free]) +
                          " free, " + std::to_string(counts[pool_held]) + " held, " +
                          std::to_string(counts[pool_queued]) + " queued; " + std::to_string(c.pool_created) +
                          " segments made and " + std::to_string(c.reused) + " reused so far");
    }
    check_lock_at(r, s.data_offset + offsetof(queue_control, lock), "the queue's lock", read);
}

/// The channel's control block, slot records and ring.
template <class Read>
void check_channel(internals_report& r, const segment_info& s, Read&& read)
{
    const std::uint64_t ctl = s.trailer->offset + sizeof(trailer);
    channel_control c{};
    if (s.shape.empty() || read(ctl, &c, sizeof c) != sizeof c) {
        r.problems.push_back("the channel's control block is missing");
        return;
    }
    const std::uint64_t slots = s.shape[0];
    if (std::memcmp(c.magic, channel_magic, sizeof c.magic) != 0 || c.slots != slots || slots == 0 ||
        slots > channel_max_slots || c.slot_bytes * slots != s.data_bytes ||
        s.bytes < ctl + channel_extra_bytes(slots)) {
        r.problems.push_back("the channel's control block disagrees with its header (magic, slot count or size)");
        return;
    }
    std::vector<slot_record> recs(static_cast<std::size_t>(slots));
    std::vector<std::uint32_t> ring(static_cast<std::size_t>(slots));
    const std::size_t rec_bytes = recs.size() * sizeof(slot_record), ring_bytes = ring.size() * sizeof(std::uint32_t);
    if (read(ctl + sizeof c, recs.data(), rec_bytes) != rec_bytes ||
        read(ctl + sizeof c + rec_bytes, ring.data(), ring_bytes) != ring_bytes) {
        r.problems.push_back("the channel's slot records are cut short");
        return;
    }
    std::size_t counts[4] = {0, 0, 0, 0};
    proc_cache cache;
    const bool ring_ok = c.head <= c.tail && c.tail - c.head <= slots;
    for (std::size_t i = 0; i < recs.size(); ++i) {
        const slot_record& rec = recs[i];
        if (rec.state > slot_received) {
            r.problems.push_back("slot " + std::to_string(i) + " has an unknown state " + std::to_string(rec.state));
            continue;
        }
        ++counts[rec.state];
        if (rec.state == slot_loaned || rec.state == slot_received) {
            const process_check p = check_process(rec.pid, rec.start, &cache);
            if (!valid_pid(rec.pid) || p.state == liveness::dead) {
                r.problems.push_back("slot " + std::to_string(i) + " is held by a process that is gone (" + p.detail +
                                     "): the next loan that finds no free slot takes it back");
            }
        } else if (rec.state == slot_ready && ring_ok && (rec.seq < c.head || rec.seq >= c.tail)) {
            r.problems.push_back("slot " + std::to_string(i) + " is published as number " + std::to_string(rec.seq) +
                                 ", outside the ring (" + std::to_string(c.head) + " to " + std::to_string(c.tail) +
                                 "): a process died while publishing or receiving it; the next loan that finds no "
                                 "free slot takes it back");
        }
    }
    r.notes.push_back("channel: " + std::to_string(slots) + " slots: " + std::to_string(counts[slot_free]) + " free, " +
                      std::to_string(counts[slot_loaned]) + " loaned, " + std::to_string(counts[slot_ready]) +
                      " published, " + std::to_string(counts[slot_received]) + " received; " +
                      std::to_string(c.published) + " published, " + std::to_string(c.received) + " received and " +
                      std::to_string(c.reclaimed) + " reclaimed so far" + (c.closed != 0 ? "; closed" : ""));
    if (!ring_ok) {
        r.problems.push_back("the channel's ring is corrupt (head " + std::to_string(c.head) + ", tail " +
                             std::to_string(c.tail) + ")");
    } else {
        for (std::uint64_t k = c.head; k < c.tail; ++k) {
            const std::uint32_t i = ring[static_cast<std::size_t>(k % slots)];
            if (i >= slots || recs[i].state != slot_ready || recs[i].seq != k) {
                r.problems.push_back("the ring names slot " + std::to_string(i) + " for publication " +
                                     std::to_string(k) + ", which is not that published slot");
            }
        }
        if (c.tail - c.head != counts[slot_ready]) {
            r.problems.push_back("the ring holds " + std::to_string(c.tail - c.head) +
                                 " published slots, the records " + std::to_string(counts[slot_ready]));
        }
    }
    check_lock_at(r, ctl + offsetof(channel_control, producer_lock), "the channel's producer lock", read);
    check_lock_at(r, ctl + offsetof(channel_control, consumer_lock), "the channel's consumer lock", read);
}

/// The object's header, table of contents and extents (the blob is checked by load<T>, which knows T).
template <class Read>
void check_object(internals_report& r, const segment_info& s, Read&& read)
{
    const std::size_t n = static_cast<std::size_t>(s.data_bytes);
    unsigned char head[object_header_bytes] = {};
    if (n < sizeof head || read(s.data_offset, head, sizeof head) != sizeof head) {
        r.problems.push_back("the object header is missing");
        return;
    }
    // Everything parse_object_payload reads lies before the end of the table of extents or the blob's
    // start, whichever is last: read that much (at most 64 MiB), never the arrays.
    const auto end_of = [](std::uint64_t off, std::uint64_t len) {
        return len > UINT64_MAX - off ? UINT64_MAX : off + len;
    };
    const std::uint64_t need = std::max({std::uint64_t(sizeof head),
                                         end_of(get_u64(head + 32), get_u64(head + 24) * 64),
                                         end_of(get_u64(head + 40), get_u64(head + 48) * 8), get_u64(head + 56)});
    if (need > n) {
        r.problems.push_back("corrupt composite object: its table of contents, extents or blob lie outside its " +
                             std::to_string(n) + " payload bytes");
        return;
    }
    if (need > (std::uint64_t(64) << 20)) {
        r.notes.push_back("object: a table of contents of " + std::to_string(need) + " bytes, not checked");
        return;
    }
    std::vector<unsigned char> meta(static_cast<std::size_t>(need));
    if (read(s.data_offset, meta.data(), meta.size()) != meta.size()) {
        r.problems.push_back("the object's table of contents is cut short");
        return;
    }
    try {
        // Told the payload's real size, parsing reads only inside the regions the header names, all of
        // which lie in the `need` bytes read.
        const parsed_object obj = parse_object_payload(meta.data(), n, object_payload_offset, "inspect", s.name);
        r.notes.push_back("object: " + std::to_string(obj.entries.size()) + " arrays, a blob of " +
                          std::to_string(obj.blob_bytes) + " bytes");
    } catch (const format_error& e) {
        r.problems.push_back(e.what());
    }
}

/// A queue's summary: arrays queued and capacity, from its control block.
template <class Read>
void summarize_queue(segment_info& s, Read&& read)
{
    queue_control c{};
    if (s.data_bytes < sizeof c || read(s.data_offset, &c, sizeof c) != sizeof c ||
        std::memcmp(c.magic, queue_magic, sizeof c.magic) != 0 || c.capacity == 0 || c.capacity > queue_max_capacity ||
        queue_count(c.state) > c.capacity) {
        return; // inspect's check of the internals says what is wrong
    }
    const std::uint64_t count = queue_count(c.state);
    s.contents.known = true;
    s.contents.text = std::to_string(count) + " of " + std::to_string(c.capacity) + " queued" +
                      (c.closed != 0 ? ", closed" : "");
    s.contents.counts = {{"queued", count}, {"capacity", c.capacity}, {"closed", c.closed != 0 ? 1u : 0u}};
}

/// A channel's summary: slots in use (loaned, published or being read) of all slots.
template <class Read>
void summarize_channel(segment_info& s, Read&& read)
{
    const std::uint64_t ctl = s.trailer->offset + sizeof(trailer);
    channel_control c{};
    if (s.shape.empty() || read(ctl, &c, sizeof c) != sizeof c ||
        std::memcmp(c.magic, channel_magic, sizeof c.magic) != 0 || c.slots != s.shape[0] || c.slots == 0 ||
        c.slots > 65536) {
        return;
    }
    std::vector<slot_record> recs(c.slots);
    const std::size_t rec_bytes = recs.size() * sizeof(slot_record);
    if (read(ctl + sizeof c, recs.data(), rec_bytes) != rec_bytes) {
        return;
    }
    std::uint64_t counts[4] = {0, 0, 0, 0};
    for (const slot_record& r : recs) {
        counts[r.state <= slot_received ? r.state : slot_loaned] += 1; // an unknown state is not free
    }
    const std::uint64_t in_use = c.slots - counts[slot_free];
    s.contents.known = true;
    s.contents.text = std::to_string(in_use) + " of " + std::to_string(c.slots) + " slots in use" +
                      (in_use != 0 ? " (" + std::to_string(counts[slot_loaned]) + " loaned, " +
                                         std::to_string(counts[slot_ready]) + " published, " +
                                         std::to_string(counts[slot_received]) + " received)"
                                   : std::string()) +
                      (c.closed != 0 ? ", closed" : "");
    s.contents.counts = {{"in_use", in_use},
                         {"slots", c.slots},
                         {"loaned", counts[slot_loaned]},
                         {"published", counts[slot_ready]},
                         {"received", counts[slot_received]},
                         {"closed", c.closed != 0 ? 1u : 0u}};
}

/// An object's summary: its arrays (its table of contents) and the size of its blob (its other members).
template <class Read>
void summarize_object(segment_info& s, Read&& read)
{
    unsigned char head[object_header_bytes] = {};
    if (s.data_bytes < sizeof head || read(s.data_offset, head, sizeof head) != sizeof head ||
        std::memcmp(head, object_magic, sizeof object_magic) != 0) {
        return;
    }
    const std::uint64_t arrays = get_u64(head + 24), blob = get_u64(head + 64);
    if (arrays > s.data_bytes / object_entry_bytes || blob > s.data_bytes) {
        return;
    }
    s.contents.known = true;
    s.contents.text = std::to_string(arrays) + (arrays == 1 ? " array" : " arrays") + ", a blob of " +
                      std::to_string(blob) + (blob == 1 ? " byte" : " bytes");
    s.contents.counts = {{"arrays", arrays}, {"blob_bytes", blob}};
}

/// A dict's or list's summary: entries and capacity, from its control block.
template <class Read>
void summarize_collection(segment_info& s, Read&& read)
{
    collection_control c{};
    collection_layout l;
    const std::uint32_t kind = s.kind == segment_kind::dict ? kind_dict : kind_list;
    if (s.data_bytes < sizeof c || read(s.data_offset, &c, sizeof c) != sizeof c ||
        !collection_control_problem(c, kind, static_cast<std::size_t>(s.data_bytes), l).empty()) {
        return; // inspect's check of the internals says what is wrong
    }
    const std::uint64_t size = view_size(c.view);
    s.contents.known = true;
    s.contents.text = std::to_string(size) + " of " + std::to_string(c.capacity) + " entries";
    s.contents.counts = {{"entries", size}, {"capacity", static_cast<std::uint64_t>(c.capacity)}};
}

/// Fills `s.contents` for the kinds that have a summary (one function per kind). Errors of `read`
/// leave it empty.
template <class Read>
void summarize_contents(segment_info& s, Read&& read)
{
    if (!s.trailer || s.trailer->version != trailer_version || !s.problem.empty()) {
        return;
    }
    try {
        switch (s.kind) {
        case segment_kind::queue:
            summarize_queue(s, read);
            break;
        case segment_kind::channel:
            summarize_channel(s, read);
            break;
        case segment_kind::object:
            summarize_object(s, read);
            break;
        case segment_kind::dict:
        case segment_kind::list:
            summarize_collection(s, read);
            break;
        default:
            break;
        }
    } catch (const error&) {
        s.contents = contents_summary{};
    }
}

/// A dict's or list's table: its control block, the records of its entries in order, a dict's keys
/// and index, the entry segments (each must still be the file recorded), records left by a change
/// that a process did not finish, and the lock.
template <class Read>
void check_collection(internals_report& r, const segment_info& s, Read&& read)
{
    const std::uint32_t kind = s.kind == segment_kind::dict ? kind_dict : kind_list;
    const std::string noun = collection_noun(kind);
    collection_control c{};
    if (s.data_bytes < sizeof c || read(s.data_offset, &c, sizeof c) != sizeof c) {
        r.problems.push_back("the " + noun + "'s control block is missing");
        return;
    }
    collection_layout l;
    if (const std::string why = collection_control_problem(c, kind, static_cast<std::size_t>(s.data_bytes), l);
        !why.empty()) {
        r.problems.push_back("the " + noun + "'s table is corrupt: " + why);
        return;
    }
    const std::size_t size = static_cast<std::size_t>(view_size(c.view));
    r.notes.push_back(noun + ": " + std::to_string(size) + " of " + std::to_string(l.capacity) + " entries; " +
                      std::to_string(c.changes) + " changes, " + std::to_string(c.recoveries) +
                      " interrupted ones repaired" + (c.closed != 0 ? "; removed" : "") +
                      (c.dirty != 0 ? "; a change is under way (or was, by a process that died)" : ""));
    const std::uint64_t lock_off = s.data_offset + offsetof(collection_control, lock);
    unsigned char lock_bytes[lock_room] = {};
    const bool lock_read = read(lock_off, lock_bytes, sizeof lock_bytes) == sizeof lock_bytes;
    const lock_report lr = lock_read ? describe_lock(lock_bytes) : lock_report{};
    const bool in_progress = lr.held && lr.holder_state != liveness::dead && lr.problem.empty();
    if (std::uint64_t(l.records) * l.record_bytes > (std::uint64_t(64) << 20)) {
        r.notes.push_back(noun + ": a table of " + std::to_string(l.records * l.record_bytes) + " bytes, not checked");
    } else {
        std::vector<unsigned char> recs(l.records * l.record_bytes);
        std::vector<std::uint32_t> order(size);
        std::vector<std::uint32_t> index(l.index_slots);
        const std::size_t order_bytes = size * sizeof(std::uint32_t),
                          index_bytes = index.size() * sizeof(std::uint32_t);
        const std::uint64_t order_off = s.data_offset + l.order_off + view_buffer(c.view) * l.capacity * 4;
        if (read(s.data_offset + l.records_off, recs.data(), recs.size()) != recs.size() ||
            read(order_off, order.data(), order_bytes) != order_bytes ||
            read(s.data_offset + l.index_off, index.data(), index_bytes) != index_bytes) {
            r.problems.push_back("the " + noun + "'s table is cut short");
            return;
        }
        const auto rec_at = [&](std::uint32_t n) {
            collection_record x;
            std::memcpy(&x, recs.data() + std::size_t(n) * l.record_bytes, sizeof x);
            return x;
        };
        const auto key_at = [&](std::uint32_t n, const collection_record& x) {
            return std::string(reinterpret_cast<const char*>(recs.data()) + std::size_t(n) * l.record_bytes +
                                   sizeof(collection_record),
                               std::min<std::size_t>(x.key_bytes, collection_max_key));
        };
        std::vector<unsigned char> in(l.records, 0);
        std::map<std::string, std::size_t> keys;
        for (std::size_t i = 0; i < size; ++i) {
            const std::uint32_t n = order[i];
            const std::string where = kind == kind_dict ? "the entry at position " + std::to_string(i)
                                                        : "entry " + std::to_string(i);
            if (n >= l.records || in[n] != 0) {
                r.problems.push_back(where + " names record " + std::to_string(n) +
                                     (n >= l.records ? ", beyond the table" : ", which another entry names too"));
                continue;
            }
            in[n] = 1;
            const collection_record x = rec_at(n);
            std::string name;
            if (!collection_record_valid(x, kind, name)) {
                r.problems.push_back(where + " (record " + std::to_string(n) +
                                     ") is corrupt: no valid state, segment name, dtype or identity");
                continue;
            }
            std::string what = where;
            if (kind == kind_dict) {
                const std::string key = key_at(n, x);
                what = "entry '" + printable_key(key) + "'";
                if (collection_hash(key.data(), key.size()) != x.key_hash) {
                    r.problems.push_back(what + " has a key that does not match its hash");
                }
                if (!keys.emplace(key, n).second) {
                    r.problems.push_back(what + " is in the dict twice");
                }
            }
            struct stat st {};
            const std::string path = file_path(location{s.directory, name});
            if (retry_eintr([&] { return sys().fstatat(AT_FDCWD, path.c_str(), &st, AT_SYMLINK_NOFOLLOW); }) != 0) {
                r.problems.push_back(what + ": its segment '" + name + "' is gone (" +
                                     std::generic_category().message(errno) + ")");
            } else if (id_of(st) != file_id{x.dev, x.ino}) {
                r.problems.push_back(what + ": its segment '" + name +
                                     "' names another file now (removed and created again)");
            }
        }
        std::size_t orphans = 0;
        for (std::uint32_t n = 0; n < l.records; ++n) {
            orphans += in[n] == 0 && rec_at(n).state != record_free ? 1 : 0;
        }
        if (orphans != 0) {
            const std::string text = std::to_string(orphans) + " record(s) hold segments outside the " + noun +
                                     " (a change that was not finished)";
            if (in_progress) {
                r.notes.push_back(text + ", while the lock is held: a change is under way");
            } else {
                r.problems.push_back(text + ": the next change or lookup repairs it, unlinking them");
            }
        }
        if (kind == kind_dict && c.dirty == 0) {
            // Every entry is found through the index from its key's hash, and the index names nothing else.
            const std::size_t mask = l.index_slots - 1;
            std::size_t indexed = 0;
            for (const std::uint32_t v : index) {
                indexed += v != 0 ? 1 : 0;
                if (v != 0 && (v > l.records || in[v - 1] == 0)) {
                    r.problems.push_back("the dict's index names record " + std::to_string(v - 1) +
                                         ", which is not an entry");
                    break;
                }
            }
            std::size_t unreachable = 0;
            for (const auto& kv : keys) {
                std::size_t i = static_cast<std::size_t>(rec_at(static_cast<std::uint32_t>(kv.second)).key_hash) & mask;
                bool found = false;
                for (std::size_t step = 0; step < l.index_slots && index[i] != 0; ++step, i = (i + 1) & mask) {
                    if (index[i] == kv.second + 1) {
                        found = true;
                        break;
                    }
                }
                unreachable += found ? 0 : 1;
            }
            if (unreachable != 0 || indexed != keys.size()) {
                r.problems.push_back("the dict's index disagrees with its entries (" + std::to_string(unreachable) +
                                     " entries it does not lead to, " + std::to_string(indexed) + " slots used for " +
                                     std::to_string(keys.size()) + " entries)");
            }
        }
    }
    if (c.dirty != 0 && !in_progress) {
        r.problems.push_back("a change was left unfinished (its process died, or the table was damaged): the next "
                             "change or lookup repairs it");
    }
    check_lock_at(r, lock_off, "the " + noun + "'s lock", read);
}

/// Checks the internals of an ndshm segment (see internals_report).
template <class Read>
void check_internals(segment_info& s, Read&& read)
{
    internals_report& r = s.internals;
    if (!s.trailer || s.trailer->version != trailer_version) {
        return;
    }
    try {
        switch (s.kind) {
        case segment_kind::queue:
            r.checked = true;
            check_queue(r, s, read);
            break;
        case segment_kind::channel:
            r.checked = true;
            check_channel(r, s, read);
            break;
        case segment_kind::object:
            r.checked = true;
            check_object(r, s, read);
            break;
        case segment_kind::dict:
        case segment_kind::list:
            r.checked = true;
            check_collection(r, s, read);
            break;
        case segment_kind::array:
            r.checked = true;
            break;
        default:
            return;
        }
        if (s.trailer->has_lock) {
            check_lock_at(r, s.trailer->offset + offsetof(trailer, lock), "the lock", read);
        }
    } catch (const error& e) {
        r.problems.push_back(std::string("the check could not finish: ") + e.what());
    }
}

/// Inspects the segment at `loc`. Throws not_found if there is none, permission_denied if it belongs
/// to another user (unless opt.allow_other_users), error for an invalid name; everything else ends up
/// in the result (unreadable, corrupt, ...). Sets `dev_ino` to the file's identity; with `keep`, hands
/// over the open descriptor, so that the caller can act on this very file (see gc).
inline segment_info inspect_location(const location& loc, const options& opt,
                                     std::pair<std::uint64_t, std::uint64_t>& dev_ino, proc_cache* cache = nullptr,
                                     fd_guard* keep = nullptr, bool deep = false)
{
    const std::string op = "inspect";
    segment_info s;
    s.name = loc.name;
    s.directory = loc.dir;
    s.path = (loc.dir.empty() ? std::string(posix_shm_dir) : loc.dir) + "/" + loc.name;
    // Records size, mode, owner and age from `st`; refuses another user's file.
    const auto take_stat = [&](const struct stat& st) {
        s.bytes = static_cast<std::uint64_t>(st.st_size);
        s.mode = static_cast<std::uint32_t>(st.st_mode & 07777);
        s.uid = static_cast<std::uint32_t>(st.st_uid);
        s.modified_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        if (st.st_uid != detail::current_uid() && !opt.allow_other_users) {
            raise<permission_denied>(op, loc.name,
                                     "the segment belongs to uid " + std::to_string(st.st_uid) + ", not to uid " +
                                         std::to_string(detail::current_uid()),
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
            raise_errno(op, loc.name, err, loc.dir.empty() ? "shm_open" : "open");
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
    if (s.trailer && s.trailer->version == trailer_version) {
        s.creator = creator_of(*s.trailer, s.creator_detail, cache);
    } else {
        s.creator_detail = s.trailer ? "the trailer's version is unknown" : "no ndshm trailer: the creator is unknown";
    }
    if (keep != nullptr) {
        *keep = std::move(fd); // holds the file: its inode cannot go to another file meanwhile
    }
    return s;
}

inline location location_for(const std::string& name, const options& opt) { return {backend_dir(opt), name}; }

inline std::string namespace_path(const options& opt)
{
    const std::string dir = backend_dir(opt);
    return dir.empty() ? std::string(posix_shm_dir) : dir;
}

} // namespace detail

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
inline std::string gc_reason(const segment_info& s)
{
    if (s.uid != detail::current_uid() || s.name.rfind(detail::name_prefix, 0) != 0) {
        return {};
    }
    switch (s.kind) {
    case segment_kind::array:
    case segment_kind::object:
    case segment_kind::channel:
    case segment_kind::queue:
    case segment_kind::dict:
    case segment_kind::list:
        if (s.persisted() || s.creator != creator_status::dead) {
            return {};
        }
        return "its creator is dead (" + s.creator_detail + ") and it was not persisted";
    case segment_kind::unfinished:
        if (s.trailer) {
            return s.creator == creator_status::dead ? "unfinished, and its creator is dead (" + s.creator_detail + ")"
                                                     : std::string();
        }
        if (s.users_known && s.users.empty()) {
            return "unfinished, without a trailer naming its creator, and no process has it open or mapped "
                   "(its creator died while creating it)";
        }
        return {};
    case segment_kind::foreign_npy:
    case segment_kind::corrupt:
    case segment_kind::unreadable:
    case segment_kind::other:
        break;
    }
    return {};
}

/// Why gc cannot decide whether `s` is garbage, or an empty string. gc keeps such a segment and says
/// so: it would be garbage if its creator were known to be dead (or, for an unfinished segment without
/// a trailer, if no process were known to have it open), but that could not be told, for example
/// because /proc could not be read for want of a descriptor.
inline std::string gc_doubt(const segment_info& s)
{
    if (s.uid != detail::current_uid() || s.name.rfind(detail::name_prefix, 0) != 0) {
        return {};
    }
    switch (s.kind) {
    case segment_kind::array:
    case segment_kind::object:
    case segment_kind::channel:
    case segment_kind::queue:
    case segment_kind::dict:
    case segment_kind::list:
        if (s.persisted() || s.creator != creator_status::unknown) {
            return {};
        }
        return "could not tell whether its creator runs (" + s.creator_detail + ")";
    case segment_kind::unfinished:
        if (s.trailer) {
            return s.creator == creator_status::unknown
                       ? "unfinished, and could not tell whether its creator runs (" + s.creator_detail + ")"
                       : std::string();
        }
        if (!s.users_known && s.users.empty()) {
            return "unfinished without a trailer, and could not tell whether a process has it open or mapped (" +
                   (s.users_detail.empty() ? std::string("not looked up") : s.users_detail) + ")";
        }
        return {};
    case segment_kind::unreadable:
        return "could not read it (" + s.problem + ")";
    case segment_kind::foreign_npy:
    case segment_kind::corrupt:
    case segment_kind::other:
        break;
    }
    return {};
}

/// Everything wrong with a segment, as inspect() found it: corrupt or unreadable, unfinished with a dead
/// creator, or problems in its internals. Empty: healthy (`ndshm info` then exits 0, else 5).
inline std::vector<std::string> segment_problems(const segment_info& s)
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

namespace detail {

/// inspect(), and the identity (device, inode) of the file inspected in `id`; with `keep`, its open
/// descriptor too; with `deep`, a check of its internals.
inline segment_info inspect_with_users(const std::string& name, const options& opt,
                                       std::pair<std::uint64_t, std::uint64_t>& id, fd_guard* keep = nullptr,
                                       bool deep = false)
{
    check_name("inspect", name);
    segment_info s = inspect_location(location_for(name, opt), opt, id, nullptr, keep, deep);
    std::vector<std::vector<std::int64_t>> users;
    if (id.second != 0) {
        s.users_detail = detail::processes_using({id}, users, keep != nullptr ? keep->get() : -1);
        s.users_known = s.users_detail.empty();
        s.users = std::move(users[0]);
    }
    return s;
}

} // namespace detail

/// Inspects the segment `name` (in POSIX shared memory, or in the directory backend of `opt`), without
/// mapping it, looks up which processes have it open or mapped, and checks its internals
/// (`internals`: the lock; a queue's ring and queued arrays; a channel's slots and ring; an object's
/// table of contents). segment_problems() lists everything found wrong.
/// @throws not_found if there is no such segment, permission_denied if it belongs to another user
/// (unless options::allow_other_users), error for an invalid name. A segment that cannot be read or
/// parsed is not an error: its kind says unreadable or corrupt, and `problem` says why.
inline segment_info inspect(const std::string& name, const options& opt = {})
{
    std::pair<std::uint64_t, std::uint64_t> id{0, 0};
    return detail::inspect_with_users(name, opt, id, nullptr, true);
}

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

namespace detail {

/// The names of the calling user's regular files in `dir`, whatever their names ("." and ".." aside).
/// Returns false if `dir` is /dev/shm and does not exist.
inline bool list_user_files(const std::string& op, const std::string& dir, std::vector<std::string>& names)
{
    return list_user_files_with_prefix(op, dir, "", names);
}

} // namespace detail

/// Lists the calling user's ndshm segments (names starting with `ndshm_`; with `what.all`, every file
/// of the user) in POSIX shared memory, or in the directory backend of `opt` (options::directory, else
/// $NDSHM_DIR), sorted by name. Segments that cannot be read or parsed are listed with kind unreadable
/// or corrupt. For unfinished segments without a trailer, `users` is looked up as well (gc needs it);
/// for the others only with `what.users`.
/// @throws error (or the subclass that fits) if the directory cannot be listed
inline std::vector<segment_info> list_segments(const options& opt, const list_options& what)
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
            s.path = detail::namespace_path(opt) + "/" + name;
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
inline std::vector<gc_entry> gc(const options& opt = {}, bool dry_run = false,
                                std::vector<gc_entry>* undecided = nullptr)
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
                e.error = std::string(loc.dir.empty() ? "shm_unlink" : "unlink") +
                          " failed: " + std::generic_category().message(err);
            }
        }
        out.push_back(std::move(e));
    }
    return out;
}

} // namespace ndshm

#endif
