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

#include <signal.h>
#include <sys/sysmacros.h>
#include <sys/types.h>

#include "detail/npy.hpp"
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
    foreign_npy, ///< a `.npy` without ndshm's trailer, made by NumPy or another tool; never collected
    unfinished,  ///< its creator has not published it: still being written, or the creator died meanwhile
    corrupt,     ///< neither a valid ndshm segment nor a valid `.npy`; `problem` says why
    unreadable,  ///< it could not be opened or read; `problem` says why
};

/// "array", "object", "channel", "queue", "foreign npy", "unfinished", "corrupt" or "unreadable".
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
    case segment_kind::foreign_npy:
        return "foreign npy";
    case segment_kind::unfinished:
        return "unfinished";
    case segment_kind::corrupt:
        return "corrupt";
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
    std::uint32_t kind = 0;          ///< 1 array, 2 composite object, 3 channel, 4 queue
    bool ready = false;              ///< state: published (1) rather than being written (0)
    std::uint32_t flags = 0;         ///< raw flags: bit 0 persisted, bit 1 lock
    bool persisted = false;          ///< persist() was called: gc keeps it
    std::uint32_t creator_uid = 0;   ///< effective uid of the creator
    std::uint64_t creator_pid = 0;   ///< pid of the creator
    std::uint64_t creator_start = 0; ///< the creator's start time, clock ticks since boot (0: unknown)
    std::uint64_t data_offset = 0;   ///< first data byte, as the trailer records it
    std::uint64_t data_bytes = 0;    ///< data length, as the trailer records it
    std::uint64_t created_ns = 0;    ///< creation time, nanoseconds since the epoch
    bool has_lock = false;           ///< flag bit 1: the trailer holds a process-shared robust mutex
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

    bool users_known = false;        ///< `users` was looked up (see inspect())
    std::vector<std::int64_t> users; ///< pids of the processes that have it open or mapped

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
        default:
            s.problem = "the trailer names an unknown kind " + std::to_string(t.kind) + "; a newer ndshm made it";
            return;
        }
    }
    if (pending) {
        s.kind = segment_kind::unfinished;
        s.problem = "unfinished: its creator has not published it and has not written ndshm's trailer yet (still "
                    "creating it, or it died meanwhile)";
        return;
    }
    if (s.has_header) {
        s.kind = segment_kind::foreign_npy;
        return;
    }
    s.problem = !header_problem.empty() ? header_problem
                                        : "neither a .npy (no \\x93NUMPY magic) nor an ndshm segment (no trailer)";
}

/// State (field 3) and start time (field 22) of process `pid` from /proc/PID/stat. Returns false if
/// there is no such process; `proc` is set false if /proc itself is not there.
inline bool read_proc_stat(long pid, char& state, std::uint64_t& start, bool& proc) noexcept
{
    proc = true;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    std::FILE* f = std::fopen(path, "re");
    if (f == nullptr) {
        proc = ::access("/proc/self/stat", R_OK) == 0;
        return false;
    }
    char buf[1024];
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    // The command name (field 2) may hold spaces and parentheses: the fields resume after the last ')'.
    const char* p = std::strrchr(buf, ')');
    unsigned long long st = 0;
    if (p == nullptr ||
        std::sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &state,
                    &st) != 2) {
        proc = false; // unreadable: treat as if /proc could not tell
        return false;
    }
    start = st;
    return true;
}

/// What /proc said about one pid (see read_proc_stat).
struct proc_snapshot {
    bool found = false;
    bool proc = true;
    char state = '?';
    std::uint64_t start = 0;
};
/// Snapshots by pid, so that listing many segments of one creator reads its /proc entry once.
using proc_cache = std::map<std::uint64_t, proc_snapshot>;

/// Whether the process recorded in a trailer still runs: the pid must exist, not be a zombie, and
/// have the recorded start time (so a reused pid does not pass for the creator).
inline creator_status creator_of(const trailer_info& t, std::string& detail_out, proc_cache* cache = nullptr)
{
    const std::string pid = std::to_string(t.creator_pid);
    if (t.creator_pid == 0 || t.creator_pid > static_cast<std::uint64_t>(INT_MAX)) {
        detail_out = "the trailer names no valid pid (" + pid + ")";
        return creator_status::unknown;
    }
    proc_snapshot snap;
    const auto cached = cache != nullptr ? cache->find(t.creator_pid) : proc_cache::iterator();
    if (cache != nullptr && cached != cache->end()) {
        snap = cached->second;
    } else {
        snap.found = read_proc_stat(static_cast<long>(t.creator_pid), snap.state, snap.start, snap.proc);
        if (cache != nullptr) {
            cache->emplace(t.creator_pid, snap);
        }
    }
    const char state = snap.state;
    const std::uint64_t start = snap.start;
    if (!snap.found) {
        if (!snap.proc) { // no /proc: only the pid can be checked
            if (::kill(static_cast<pid_t>(t.creator_pid), 0) == 0 || errno == EPERM) {
                detail_out = "process " + pid + " exists (no /proc to compare its start time)";
                return creator_status::unknown;
            }
        }
        detail_out = "no process " + pid;
        return creator_status::dead;
    }
    if (state == 'Z' || state == 'X') {
        detail_out = "process " + pid + " has exited (a zombie its parent has not reaped)";
        return creator_status::dead;
    }
    if (t.creator_start != 0 && start != t.creator_start) {
        detail_out = "pid " + pid + " now belongs to another process (started at tick " + std::to_string(start) +
                     ", the creator at tick " + std::to_string(t.creator_start) + ")";
        return creator_status::dead;
    }
    detail_out = "process " + pid + " runs" +
                 (t.creator_start != 0 ? " with the recorded start time" : ", no start time recorded to compare");
    return creator_status::alive;
}

/// For each file (device, inode), the pids of the processes that have it open or mapped, as far as
/// /proc shows them (a user sees their own processes, root sees all). Returns false without /proc.
inline bool processes_using(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& files,
                            std::vector<std::vector<std::int64_t>>& users)
{
    users.assign(files.size(), {});
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::size_t> index;
    for (std::size_t i = 0; i < files.size(); ++i) {
        index.emplace(files[i], i);
    }
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) {
        return false;
    }
    std::vector<std::int64_t> pids;
    while (const dirent* e = ::readdir(proc)) {
        char* end = nullptr;
        const long pid = std::strtol(e->d_name, &end, 10);
        if (pid > 0 && end != nullptr && *end == '\0') {
            pids.push_back(pid);
        }
    }
    ::closedir(proc);
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
        if (DIR* fds = ::opendir((base + "/fd").c_str())) {
            while (const dirent* e = ::readdir(fds)) {
                struct stat st {};
                if (e->d_name[0] != '.' && ::fstatat(::dirfd(fds), e->d_name, &st, 0) == 0) {
                    mark(static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino));
                }
            }
            ::closedir(fds);
        }
        if (std::FILE* maps = std::fopen((base + "/maps").c_str(), "re")) {
            char line[4096];
            while (std::fgets(line, sizeof line, maps) != nullptr) {
                // start-end perms offset major:minor inode [path]
                unsigned maj = 0, min = 0;
                unsigned long long ino = 0;
                if (std::sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &ino) == 3 && ino != 0) {
                    mark(static_cast<std::uint64_t>(::makedev(maj, min)), ino);
                }
                if (std::strchr(line, '\n') == nullptr) { // an over-long line: skip its rest
                    int c = 0;
                    while ((c = std::fgetc(maps)) != EOF && c != '\n') {
                    }
                }
            }
            std::fclose(maps);
        }
    }
    return true;
}

/// Inspects the segment at `loc`. Throws not_found if there is none, permission_denied if it belongs
/// to another user (unless opt.allow_other_users), error for an invalid name; everything else ends up
/// in the result (unreadable, corrupt, ...). Sets `dev_ino` to the file's identity.
inline segment_info inspect_location(const location& loc, const options& opt,
                                     std::pair<std::uint64_t, std::uint64_t>& dev_ino, proc_cache* cache = nullptr)
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
        if (st.st_uid != ::geteuid() && !opt.allow_other_users) {
            raise<permission_denied>(op, loc.name,
                                     "the segment belongs to uid " + std::to_string(st.st_uid) + ", not to uid " +
                                         std::to_string(::geteuid()),
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
    if (s.trailer && s.trailer->version == trailer_version) {
        s.creator = creator_of(*s.trailer, s.creator_detail, cache);
    } else {
        s.creator_detail = s.trailer ? "the trailer's version is unknown" : "no ndshm trailer: the creator is unknown";
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
/// - a published array, object, channel or queue whose creator is dead and that was not persisted;
/// - an unfinished segment whose creator (named in its trailer) is dead;
/// - an unfinished segment without a trailer yet (its creator died before writing one) that no process
///   has open or mapped (`s.users_known` and `s.users` empty).
/// It keeps foreign `.npy` files, corrupt and unreadable segments, persisted ones, and every segment
/// whose creator is alive or cannot be identified. The "creator" is the process the trailer names:
/// the one that made the segment, or the one it was handed to since (array_queue, pool).
inline std::string gc_reason(const segment_info& s)
{
    if (s.uid != ::geteuid() || s.name.rfind(detail::name_prefix, 0) != 0) {
        return {};
    }
    switch (s.kind) {
    case segment_kind::array:
    case segment_kind::object:
    case segment_kind::channel:
    case segment_kind::queue:
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
        break;
    }
    return {};
}

/// Inspects the segment `name` (in POSIX shared memory, or in the directory backend of `opt`), without
/// mapping it, and looks up which processes have it open or mapped.
/// @throws not_found if there is no such segment, permission_denied if it belongs to another user
/// (unless options::allow_other_users), error for an invalid name. A segment that cannot be read or
/// parsed is not an error: its kind says unreadable or corrupt, and `problem` says why.
inline segment_info inspect(const std::string& name, const options& opt = {})
{
    detail::check_name("inspect", name);
    std::pair<std::uint64_t, std::uint64_t> id{0, 0};
    segment_info s = detail::inspect_location(detail::location_for(name, opt), opt, id);
    std::vector<std::vector<std::int64_t>> users;
    if (id.second != 0 && detail::processes_using({id}, users)) {
        s.users_known = true;
        s.users = std::move(users[0]);
    }
    return s;
}

/// Lists the calling user's ndshm segments (names starting with `ndshm_`) in POSIX shared memory, or
/// in the directory backend of `opt` (options::directory, else $NDSHM_DIR), sorted by name. Segments
/// that cannot be read or parsed are listed with kind unreadable or corrupt. For unfinished segments
/// without a trailer, `users` is looked up as well (gc needs it); for the others it is not.
/// @throws error (or the subclass that fits) if the directory cannot be listed
inline std::vector<segment_info> list_segments(const options& opt = {})
{
    const std::string dir = detail::backend_dir(opt);
    std::vector<std::string> names;
    if (!detail::list_user_segments("list segments in", detail::namespace_path(opt), names)) {
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
        if (out.back().kind == segment_kind::unfinished && !out.back().trailer && id.second != 0) {
            orphans.push_back(id);
            orphan_index.push_back(out.size() - 1);
        }
    }
    std::vector<std::vector<std::int64_t>> users;
    if (!orphans.empty() && detail::processes_using(orphans, users)) {
        for (std::size_t i = 0; i < orphans.size(); ++i) {
            out[orphan_index[i]].users_known = true;
            out[orphan_index[i]].users = std::move(users[i]);
        }
    }
    return out;
}

/// Removes the calling user's segments that nobody can use any more (see gc_reason) from POSIX shared
/// memory, or from the directory backend of `opt`. Each one is inspected again right before it is
/// removed, so a segment that was published, persisted or handed to a live process meanwhile stays.
/// Processes that have a removed segment mapped keep their mappings. With `dry_run`, removes nothing
/// and returns what it would remove.
/// @returns the segments removed (or that would be); entries whose removal failed carry `error`
/// @throws error (or the subclass that fits) if the directory cannot be listed
inline std::vector<gc_entry> gc(const options& opt = {}, bool dry_run = false)
{
    std::vector<gc_entry> out;
    for (auto& s : list_segments(opt)) {
        std::string reason = gc_reason(s);
        if (reason.empty()) {
            continue;
        }
        const detail::location loc = detail::location_for(s.name, opt);
        if (!dry_run) {
            try {
                segment_info again = inspect(s.name, opt);
                reason = gc_reason(again);
                if (reason.empty()) {
                    continue; // published, persisted or picked up meanwhile
                }
                s = std::move(again);
            } catch (const not_found&) {
                continue; // removed meanwhile
            } catch (const error&) {
                continue;
            }
        }
        gc_entry e{std::move(s), std::move(reason), false, {}};
        if (!dry_run) {
            const int err = detail::unlink_location(loc);
            if (err == 0) {
                e.removed = true;
                (void)detail::session().remove(loc);
            } else if (err == ENOENT) {
                continue; // removed meanwhile by someone else
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
