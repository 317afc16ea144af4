/// @file detail/segment_impl.hpp
/// Creating, opening, mapping and unlinking segments, the session registry, and generated names.
/// All system calls go through sys() (detail/sys.hpp).
#ifndef NDSHM_DETAIL_SEGMENT_IMPL_HPP
#define NDSHM_DETAIL_SEGMENT_IMPL_HPP

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../options.hpp"
#include "npy.hpp"
#include "sync.hpp"
#include "sys.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// Where a segment lives: the POSIX shm namespace (dir empty) or a file in a directory.
struct location {
    std::string dir;
    std::string name;

    bool operator<(const location& o) const { return std::tie(dir, name) < std::tie(o.dir, o.name); }
    std::string path() const { return dir.empty() ? "/" + name : dir + "/" + name; }
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
inline std::string backend_dir(const options& opt)
{
    if (!opt.directory.empty()) {
        return opt.directory;
    }
    const char* env = std::getenv("NDSHM_DIR");
    return env != nullptr ? std::string(env) : std::string();
}

/// Where generated and listed segments of the POSIX namespace are visible as files.
inline constexpr const char* posix_shm_dir = "/dev/shm";

inline constexpr const char* name_prefix = "ndshm_";

/// The per-user part of generated names: `ndshm_<uid in base 36>_`.
inline std::string user_prefix(uid_t uid)
{
    std::string tag;
    std::uint64_t v = uid;
    do {
        tag.insert(tag.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36]);
        v /= 36;
    } while (v != 0);
    return name_prefix + tag + "_";
}

/// Bits of randomness in a generated name.
inline constexpr int name_random_bits = 80;

/// Fills `n` bytes at `out` from the kernel's CSPRNG: getrandom, or /dev/urandom where getrandom is
/// missing (ENOSYS: a kernel before 3.17), refused (EPERM: a seccomp filter) or reports EAGAIN. Throws
/// if neither can be read: a name must never be predictable.
inline void random_bytes(unsigned char* out, std::size_t n, const std::string& op)
{
    std::size_t got = 0;
    int getrandom_err = 0;
    while (got < n) {
        const ssize_t r = sys().getrandom(out + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            getrandom_err = errno;
            break;
        }
        got += static_cast<std::size_t>(r);
    }
    if (got == n) {
        return;
    }
    int err = 0;
    const int fd = retry_eintr([&] { return sys().openat(AT_FDCWD, "/dev/urandom", O_RDONLY | O_CLOEXEC, 0); });
    if (fd < 0) {
        err = errno;
    } else {
        fd_guard guard(fd);
        got = 0;
        while (got < n) {
            const ssize_t r = sys().read(fd, out + got, n - got);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                err = r < 0 ? errno : EIO;
                break;
            }
            got += static_cast<std::size_t>(r);
        }
        if (got == n) {
            return;
        }
    }
    raise<error>(op, "",
                 "no randomness for a segment name: getrandom failed (" +
                     std::generic_category().message(getrandom_err) + ") and so did reading /dev/urandom (" +
                     std::generic_category().message(err) + ")",
                 "make getrandom or /dev/urandom available (in a sandbox: allow the getrandom system call), or "
                 "choose a name with options::name",
                 errno_code(err != 0 ? err : getrandom_err));
}

/// A fresh name: the user prefix and 16 base-32 characters (80 bits) from the kernel's CSPRNG.
/// At most 6 + 7 + 1 + 16 = 30 characters.
inline std::string generate_name(const std::string& op = "create")
{
    unsigned char rnd[10];
    random_bytes(rnd, sizeof rnd, op);
    std::string s = user_prefix(current_uid());
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    for (int i = 0; i < 16; ++i) { // 16 groups of 5 bits from the 80-bit number
        unsigned v = 0;
        for (int b = 0; b < 5; ++b) {
            const int bit = i * 5 + b;
            v = (v << 1) | ((rnd[bit / 8] >> (bit % 8)) & 1u);
        }
        s += alphabet[v];
    }
    return s;
}

/// The segment name in `name`: a POSIX-style "/img", as shm_open takes it, names the segment "img".
inline std::string segment_name(const std::string& name)
{
    return name.size() > 1 && name[0] == '/' ? name.substr(1) : name;
}

/// Throws unless `name` is a usable segment name.
inline void check_name(const std::string& op, const std::string& name)
{
    const auto bad = [&](const std::string& why) {
        raise<error>(op, name, "invalid segment name: " + why,
                     "use 1 to 255 characters from [A-Za-z0-9._-], not starting with '.' (a single leading '/', "
                     "as shm_open names are written, is dropped), or leave options::name empty for a generated name",
                     make_error_code(errc::invalid_argument));
    };
    if (name.empty() || name.size() > 255) {
        bad(name.empty() ? "it is empty" : "it is longer than 255 characters");
    }
    if (name[0] == '.') {
        bad("it starts with '.'");
    }
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-';
        if (!ok) {
            bad("it contains a character outside [A-Za-z0-9._-]");
        }
    }
}

/// The segments this process created and still owns, each with the identity of the file it created
/// (so that it never removes a file someone else created under the same name later). A forked child
/// starts with an empty set: it inherits the parent's mappings but never its names.
class session_registry {
public:
    void add(const location& l, file_id id)
    {
        std::lock_guard<std::mutex> g(m_mutex);
        refresh();
        m_owned[l] = id;
    }
    /// True if this process owned `l` as the file `id` (and now does not).
    bool remove(const location& l, file_id id)
    {
        std::lock_guard<std::mutex> g(m_mutex);
        refresh();
        const auto it = m_owned.find(l);
        if (it == m_owned.end() || it->second != id) {
            return false;
        }
        m_owned.erase(it);
        return true;
    }
    /// Forgets `l` whatever file it was (the name itself was removed).
    bool remove(const location& l)
    {
        std::lock_guard<std::mutex> g(m_mutex);
        refresh();
        return m_owned.erase(l) != 0;
    }
    /// True if this process owns `l` as the file `id`.
    bool contains(const location& l, file_id id)
    {
        std::lock_guard<std::mutex> g(m_mutex);
        refresh();
        const auto it = m_owned.find(l);
        return it != m_owned.end() && it->second == id;
    }
    std::map<location, file_id> take_all()
    {
        std::lock_guard<std::mutex> g(m_mutex);
        refresh();
        return std::exchange(m_owned, {});
    }

private:
    void refresh()
    {
        const pid_t me = current_pid();
        if (m_pid != me) {
            m_owned.clear();
            m_pid = me;
        }
    }
    std::mutex m_mutex;
    pid_t m_pid = 0;
    std::map<location, file_id> m_owned;
};

inline session_registry& session()
{
    static session_registry s;
    return s;
}

/// Opens `l` with open(2) flags `flags`; returns the fd or -1 with errno set.
inline int open_location(const location& l, int flags, mode_t mode)
{
    // O_NONBLOCK: a FIFO planted under the name must not block the open (no effect on regular files).
    flags |= O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    if (l.dir.empty()) {
        return retry_eintr([&] { return sys().shm_open(l.path().c_str(), flags, mode); });
    }
    return retry_eintr([&] { return sys().openat(AT_FDCWD, l.path().c_str(), flags, mode); });
}

/// Removes the name `l`; returns 0 or an errno value.
inline int unlink_location(const location& l) noexcept
{
    const int r = retry_eintr([&] {
        return l.dir.empty() ? sys().shm_unlink(l.path().c_str()) : sys().unlinkat(AT_FDCWD, l.path().c_str(), 0);
    });
    return r == 0 ? 0 : errno;
}

/// Where the name `l` is visible as a file: /dev/shm/NAME for POSIX shared memory on Linux (where
/// glibc's shm_open puts it), DIR/NAME in a directory backend.
inline std::string file_path(const location& l)
{
    return (l.dir.empty() ? std::string(posix_shm_dir) : l.dir) + "/" + l.name;
}

/// Removes the name `l` only while it still names the file `id`: a name that someone unlinked and
/// someone else created again is left to its new owner. The caller must hold the file `id` (a mapping
/// or a descriptor of it) meanwhile: a file system may give a freed inode number to a new file. Returns
/// 0, ENOENT (the name is gone), ESTALE (it names another file now: left alone), or the errno of the
/// check or of the unlink. The check and the unlink are two system calls: a name that is unlinked and
/// created again in the microseconds between them can still go (no system call removes a name only if
/// it names a given file).
inline int unlink_if_same(const location& l, file_id id) noexcept
{
    if (!id.known()) {
        return unlink_location(l);
    }
    struct stat st {};
    const std::string path = file_path(l);
    if (retry_eintr([&] { return sys().fstatat(AT_FDCWD, path.c_str(), &st, AT_SYMLINK_NOFOLLOW); }) != 0) {
        return errno;
    }
    if (id_of(st) != id) {
        return ESTALE;
    }
    return unlink_location(l);
}

/// Memory mapped with mmap, unmapped when the last mapping that uses it goes. Several mappings (an
/// owner's and attached handles') may share one region of one file.
class region {
public:
    region(unsigned char* base, std::size_t size) noexcept : m_base(base), m_size(size) {}
    region(const region&) = delete;
    region& operator=(const region&) = delete;
    ~region() { (void)sys().munmap(m_base, m_size); }
    unsigned char* base() const noexcept { return m_base; }
    std::size_t size() const noexcept { return m_size; }

private:
    unsigned char* m_base;
    std::size_t m_size;
};

/// One mapping of one segment in this process. Handles share it through shared_ptr; the last one
/// unmaps it (its region, unless another mapping of the same file still uses that), and, if this
/// process created the name and still owns it, unlinks it while the name still names this segment
/// (see unlink_if_same).
class mapping {
public:
    mapping(location loc, unsigned char* base, std::size_t size, bool writable)
        : mapping(std::move(loc), std::make_shared<region>(base, size), writable)
    {
    }
    mapping(location loc, std::shared_ptr<const region> r, bool writable) noexcept
        : m_loc(std::move(loc)), m_region(std::move(r)), m_base(m_region->base()), m_size(m_region->size()),
          m_writable(writable)
    {
    }
    mapping(const mapping&) = delete;
    mapping& operator=(const mapping&) = delete;
    ~mapping()
    {
        // remove() fails in a forked child (other pid) and after persist(), free_session() or unlink().
        // The name is checked while this mapping still holds the file: as long as it does, no other
        // file can have its inode, so equal identities mean the same file.
        if (m_owner && session().remove(m_loc, m_id)) {
            (void)unlink_if_same(m_loc, m_id);
        }
    }

    const location& loc() const noexcept { return m_loc; }
    const std::string& name() const noexcept { return m_loc.name; }
    unsigned char* base() const noexcept { return m_base; }
    std::size_t size() const noexcept { return m_size; }
    bool writable() const noexcept { return m_writable; }
    /// The memory this mapping uses (shared with other mappings of the same file).
    const std::shared_ptr<const region>& memory() const noexcept { return m_region; }

    /// The identity of the file mapped (unknown for anonymous memory and files mapped from disk).
    file_id id() const noexcept { return m_id; }
    void set_id(file_id id) noexcept { m_id = id; }

    /// ndshm's trailer, or nullptr for a foreign segment.
    trailer* get_trailer() const noexcept { return m_trailer; }
    void set_trailer(trailer* t) noexcept { m_trailer = t; }

    /// Marks this process as the owner of the name (registered in the session).
    void own()
    {
        session().add(m_loc, m_id);
        m_owner = true;
    }

    /// Gives up ownership: the name outlives this process until someone unlinks it.
    void persist() noexcept
    {
        if (m_trailer != nullptr && m_writable) {
            fetch_or(m_trailer->flags, flag_persisted);
        }
        if (m_owner) {
            (void)session().remove(m_loc, m_id);
            m_owner = false;
        }
    }

    /// True if this process owns the name: the last handle of this mapping would unlink it.
    bool owned() const { return m_owner && session().contains(m_loc, m_id); }

    /// Gives up ownership without marking the segment persisted, because another process takes it
    /// over (array_queue::push, a pool worker returning an array). No handle here unlinks it any more.
    void disown() noexcept
    {
        if (m_owner) {
            (void)session().remove(m_loc, m_id);
            m_owner = false;
        }
    }

    /// Makes the segment visible to attach: stores the magic, its first byte last with release order.
    void publish() noexcept
    {
        if (m_trailer != nullptr) {
            store_release(m_trailer->state, state_ready);
        }
        std::memcpy(m_base + 1, npy_magic + 1, sizeof npy_magic - 1);
        __atomic_store_n(m_base, static_cast<unsigned char>(npy_magic[0]), __ATOMIC_RELEASE);
    }

private:
    location m_loc;
    std::shared_ptr<const region> m_region;
    unsigned char* m_base;
    std::size_t m_size;
    bool m_writable;
    bool m_owner = false;
    file_id m_id;
    trailer* m_trailer = nullptr;
};

/// What attach learned of a segment: its array, its kind (0: foreign, no trailer) and where its
/// trailer is (SIZE_MAX: none).
struct segment_layout {
    npy_info info;
    std::uint32_t kind = 0;
    std::size_t trailer_off = SIZE_MAX;
};

/// The regions of segments this process has mapped, by file identity and writability, with what
/// attach parsed of each: attaching a segment again while any handle of it is alive shares its
/// mapping (an open and an fstat, to resolve the name, and no read, no mmap). A file's identity cannot
/// be reused while a region maps it, and a region found is used only if the file still has its size
/// and its header still has the bytes that were parsed (reshape rewrites it).
class region_cache {
public:
    /// The live region of file `id` (mapped writable or not) of `size` bytes, and its layout; null if
    /// there is none.
    std::shared_ptr<const region> find(file_id id, bool writable, std::size_t size, segment_layout& layout)
    {
        std::lock_guard<std::mutex> g(m_mutex);
        const auto it = m_entries.find(key{id.dev, id.ino, writable});
        if (it == m_entries.end()) {
            return nullptr;
        }
        auto r = it->second.memory.lock();
        const entry& e = it->second;
        if (!r || r->size() != size || std::memcmp(r->base(), e.header.data(), e.header_size) != 0) {
            return nullptr; // stale: the attach that follows overwrites the entry (or a sweep drops it)
        }
        layout = it->second.layout;
        return r;
    }

    /// Remembers `r`, a mapping of file `id`, its layout and the header it was parsed from (its first
    /// `header_size` bytes: the dict's closing brace is among them, since the header parsed). What
    /// follows the dict is padding, so any change of the dict (a reshape) changes one of the bytes up
    /// to and including the old dict's brace.
    void remember(file_id id, bool writable, const std::shared_ptr<const region>& r, const segment_layout& layout,
                  const unsigned char* header, std::size_t header_size)
    {
        entry e{r, layout, {}, 0};
        const auto* brace = static_cast<const unsigned char*>(std::memchr(header, '}', header_size));
        if (!id.known() || brace == nullptr || static_cast<std::size_t>(brace - header) + 1 > e.header.size()) {
            return; // a dict longer than ndshm writes (dozens of dimensions) is read again each time
        }
        e.header_size = static_cast<std::size_t>(brace - header) + 1;
        std::memcpy(e.header.data(), header, e.header_size);
        std::lock_guard<std::mutex> g(m_mutex);
        if (m_entries.size() >= m_sweep_at) { // drop the entries of regions that are gone
            for (auto it = m_entries.begin(); it != m_entries.end();) {
                it = it->second.memory.expired() ? m_entries.erase(it) : std::next(it);
            }
            m_sweep_at = std::max<std::size_t>(64, 2 * m_entries.size());
        }
        m_entries[key{id.dev, id.ino, writable}] = std::move(e);
    }

private:
    struct key {
        std::uint64_t dev, ino;
        bool writable;
        bool operator<(const key& o) const noexcept
        {
            return std::tie(dev, ino, writable) < std::tie(o.dev, o.ino, o.writable);
        }
    };
    struct entry {
        std::weak_ptr<const region> memory;
        segment_layout layout;
        std::array<unsigned char, 256> header; ///< the header up to the end of its dict
        std::size_t header_size;
    };
    std::mutex m_mutex;
    std::map<key, entry> m_entries;
    std::size_t m_sweep_at = 64;
};

inline region_cache& attached_regions()
{
    static region_cache c;
    return c;
}

/// Lets later attaches of the segment of `m` (published, holding `info`'s array, of `kind`) share its
/// mapping. `header` is the segment's header as it was parsed (its first info.data_offset bytes; by
/// default those of the mapping).
inline void remember_layout(const mapping& m, const npy_info& info, std::uint32_t kind,
                            const unsigned char* header = nullptr)
{
    segment_layout layout;
    layout.info = info;
    layout.kind = kind;
    if (m.get_trailer() != nullptr) {
        layout.trailer_off = static_cast<std::size_t>(reinterpret_cast<unsigned char*>(m.get_trailer()) - m.base());
    }
    attached_regions().remember(m.id(), m.writable(), m.memory(), layout, header != nullptr ? header : m.base(),
                                info.data_offset);
}

/// Maps `size` bytes of `fd`; throws on failure.
inline unsigned char* map_fd(int fd, std::size_t size, bool writable, bool populate, const std::string& op,
                             const std::string& name)
{
    int flags = MAP_SHARED;
#ifdef MAP_POPULATE
    if (populate) {
        flags |= MAP_POPULATE;
    }
#else
    (void)populate;
#endif
    void* p = MAP_FAILED;
    do { // a failed mmap had no effect: retry an interrupted one
        p = sys().mmap(nullptr, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, flags, fd, 0);
    } while (p == MAP_FAILED && errno == EINTR);
    if (p == MAP_FAILED) {
        raise_errno(op, name, errno, "mmap");
    }
    return static_cast<unsigned char*>(p);
}

/// Bytes free on the file system of `fd`, or SIZE_MAX if unknown.
inline std::size_t free_bytes(int fd) noexcept
{
    struct statvfs st {};
    if (sys().fstatvfs(fd, &st) != 0) {
        return SIZE_MAX;
    }
    return static_cast<std::size_t>(st.f_bavail) * static_cast<std::size_t>(st.f_frsize);
}

[[noreturn]] inline void raise_out_of_space(const std::string& op, const location& l, std::size_t need,
                                            std::size_t avail, int err)
{
    const std::string where = l.dir.empty() ? std::string(posix_shm_dir) : l.dir;
    std::string cause = "needs " + human_bytes(need) + " (" + std::to_string(need) + " bytes) but " + where + " has ";
    cause += avail == SIZE_MAX ? std::string("too little")
                               : human_bytes(avail) + " (" + std::to_string(avail) + " bytes)";
    cause += " free";
    raise<out_of_space>(op, l.name, cause,
                        "free space (ndshm gc, ndshm rm, ndshm::free_all) or enlarge " + where +
                            " (in Docker: docker run --shm-size=" + std::to_string(need / (1024 * 1024 * 1024) + 1) +
                            "g ...)",
                        errno_code(err));
}

/// True if the file open as `fd` lives on a file system whose pages are memory (tmpfs, /dev/shm,
/// hugetlbfs): there, touching an unreserved page of a mapping (even to read it) needs a free page, and
/// raises SIGBUS when there is none. Unknown (fstatfs failed): true, the safe answer.
inline bool memory_backed(int fd) noexcept
{
    struct statfs sf {};
    if (retry_eintr([&] { return sys().fstatfs(fd, &sf); }) != 0) {
        return true;
    }
    constexpr unsigned long tmpfs_magic = 0x01021994, hugetlbfs_magic = 0x958458f6;
    const auto type = static_cast<unsigned long>(sf.f_type);
    return type == tmpfs_magic || type == hugetlbfs_magic;
}

/// Bytes of the file of `st` that have no storage behind them: the holes that a writer that extends a
/// file with ftruncate (NumPy's open_memmap does) leaves.
inline std::uint64_t unreserved_bytes(const struct stat& st) noexcept
{
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const auto have = static_cast<std::uint64_t>(st.st_blocks) * 512;
    return have >= size ? 0 : size - have;
}

/// Makes a mapping of the file open as `fd` (with stat `st`) safe from SIGBUS: if the file has holes
/// that a touch of the mapping would have to fill (any hole under a writable mapping; under a read-only
/// one, on a memory-backed file system only), reserves them with fallocate, which changes neither the
/// contents nor the size. `fd_writable` says whether `fd` may reserve; if not, `reopen()` gives a
/// writable descriptor of the same name (a read-only handle of a segment this user may write). Throws
/// out_of_space, naming the fix, when the holes cannot be reserved: not enough free space, or no
/// permission to write. `noun` ("segment", "file") and `where` (its directory) are for messages,
/// `other_fix` a further way out.
template <class Reopen>
void reserve_holes(int fd, const struct stat& st, bool writable_mapping, bool fd_writable, Reopen&& reopen,
                   const std::string& op, const std::string& name, const char* noun, const std::string& where,
                   const std::string& other_fix)
{
    const std::uint64_t missing = unreserved_bytes(st);
    if (missing == 0 || (!writable_mapping && !memory_backed(fd))) {
        return;
    }
    const std::string sparse = std::string("the ") + noun + " is sparse: " + std::to_string(missing) + " of its " +
                               std::to_string(st.st_size) +
                               " bytes have no memory reserved (NumPy's open_memmap, and any writer that extends a "
                               "file with ftruncate, leaves holes), and touching a hole when " +
                               where + " is full kills the process with SIGBUS";
    const std::string shm_hint = where == posix_shm_dir
                                     ? " (in Docker: docker run --shm-size=" +
                                           std::to_string(missing / (1024 * 1024 * 1024) + 1) + "g ...)"
                                     : std::string();
    const auto no_room = [&](std::size_t avail, int err) {
        raise<out_of_space>(
            op, name,
            sparse + "; reserving them needs " + std::to_string(missing) + " bytes but " + where + " has " +
                (avail == SIZE_MAX ? std::string("too few") : std::to_string(avail)) + " bytes free",
            "free space (ndshm gc, ndshm rm, ndshm::free_all) or enlarge " + where + shm_hint + other_fix,
            errno_code(err));
    };
    fd_guard other;
    int wfd = fd;
    if (!fd_writable) {
        other = reopen();
        int err = errno;
        struct stat again {};
        if (other.get() >= 0 && retry_eintr([&] { return sys().fstat(other.get(), &again); }) == 0 &&
            id_of(again) != id_of(st)) {
            err = ESTALE;
            other.reset();
        }
        if (other.get() < 0) {
            raise<out_of_space>(op, name,
                                sparse +
                                    "; this read-only handle cannot reserve them (opening it for writing failed: " +
                                    std::generic_category().message(err) + ")",
                                "attach it once with a writable handle, which reserves the holes, or have its writer "
                                "fill every page (after NumPy's open_memmap, assign the whole array)" +
                                    other_fix,
                                errno_code(err));
        }
        wfd = other.get();
    }
    const std::size_t avail = free_bytes(wfd);
    if (missing > avail) {
        no_room(avail, ENOSPC);
    }
    if (retry_eintr([&] { return sys().fallocate(wfd, FALLOC_FL_KEEP_SIZE, 0, st.st_size); }) != 0) {
        const int err = errno;
        if (err == ENOSPC || err == EFBIG || err == EDQUOT) {
            no_room(free_bytes(wfd), err);
        }
        if ((err == EOPNOTSUPP || err == ENOSYS) && !memory_backed(wfd)) {
            return; // a disk file system that cannot reserve: its mappings work as any other's
        }
        raise_errno(op, name, err, "fallocate (reserving the holes of a sparse segment)");
    }
}

/// Creates a new segment of `total` bytes exclusively, reserves its space, maps it read-write and
/// returns it registered as owned by this process. The magic is not yet published. Nothing is left
/// behind if any step fails.
inline std::shared_ptr<mapping> create_segment(const options& opt, std::size_t total, const std::string& op)
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
            raise_errno(op, loc.name, err, loc.dir.empty() ? "shm_open" : "open");
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

/// A process as the trailer records it: pid and start time (clock ticks since boot).
struct process_identity {
    std::uint64_t pid = 0;
    std::uint64_t start = 0;
};

/// This process's identity, computed once per thread and process (a forked child computes its own). A
/// start time that could not be read (say, with no descriptor free) is 0, and is read again next time.
inline process_identity this_process()
{
    thread_local process_identity cached;
    const auto me = static_cast<std::uint64_t>(current_pid());
    if (cached.pid != me || cached.start == 0) {
        cached = process_identity{me, process_start_time(me)};
    }
    return cached;
}

/// Fills in the trailer of a freshly created segment (state: writing).
inline trailer* write_trailer(mapping& m, std::size_t offset, std::uint32_t kind, std::size_t data_offset,
                              std::size_t data_bytes) noexcept
{
    auto* t = reinterpret_cast<trailer*>(m.base() + offset);
    std::memset(t, 0, sizeof *t);
    std::memcpy(t->magic, trailer_magic, sizeof trailer_magic);
    t->version = trailer_version;
    t->size = sizeof(trailer);
    t->kind = kind;
    t->state = state_writing;
    t->uid = static_cast<std::uint32_t>(current_uid());
    const process_identity me = this_process();
    t->creator_pid = me.pid;
    t->creator_start = me.start;
    t->data_offset = data_offset;
    t->data_bytes = data_bytes;
    struct timespec ts {};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    t->created_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
    // The per-array lock (lock.hpp) is set up here, before publication, so that attachers never race
    // to initialise it.
    init_lock(t->lock);
    t->flags |= flag_lock;
    m.set_trailer(t);
    return t;
}

/// True when the first six bytes are all zero: a segment whose creator has not published it yet.
inline bool unpublished(const unsigned char* head, std::size_t size) noexcept
{
    for (std::size_t i = 0; i < std::min<std::size_t>(size, sizeof npy_magic); ++i) {
        if (head[i] != 0 && (i == 0 || head[i] != static_cast<unsigned char>(npy_magic[i]))) {
            return false;
        }
    }
    return true;
}

/// Reads up to `n` bytes at `off` with pread (no page of the segment gets mapped or faulted in);
/// returns the count read. Throws on an I/O error.
inline std::size_t read_at(int fd, void* buf, std::size_t n, std::size_t off, const std::string& op,
                           const std::string& name)
{
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = sys().pread(fd, static_cast<unsigned char*>(buf) + got, n - got,
                                      static_cast<off_t>(off + got));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            raise_errno(op, name, errno, "pread");
        }
        if (r == 0) {
            break;
        }
        got += static_cast<std::size_t>(r);
    }
    return got;
}

/// True if `uid` is this process's effective uid. The last answer of geteuid() is remembered, so that
/// attach makes no system call for it; any other uid asks again. A process that changed its effective
/// uid thus still accepts segments of the uid it ran as before, never those of a uid it did not have.
inline bool is_own_uid(uid_t uid) noexcept
{
    static std::atomic<uid_t> last{static_cast<uid_t>(-1)};
    if (uid == last.load(std::memory_order_relaxed) && uid != static_cast<uid_t>(-1)) {
        return true;
    }
    const uid_t me = current_uid();
    last.store(me, std::memory_order_relaxed);
    return uid == me;
}

/// Bytes of a segment read before mapping it: enough for any .npy header ndshm accepts.
inline constexpr std::size_t head_limit = 65536 + 12;
/// A segment up to this size is read whole before it is mapped (header and trailer in one read).
inline constexpr std::size_t small_segment = 16384;
static_assert(small_segment >= 4096, "the first read holds a page");

/// An open segment whose creator has published it: its fd, its size, and a copy of its first bytes.
struct published_segment {
    location loc;
    fd_guard fd;
    file_id id;
    struct stat st {};
    std::size_t size = 0;
    std::array<unsigned char, small_segment> first; ///< the first head_size bytes, unless `longer` holds them
    std::unique_ptr<unsigned char[]> longer;        ///< a header longer than `first` holds
    std::size_t head_size = 0;
    /// A copy of the segment's first head_size bytes.
    const unsigned char* head() const noexcept { return longer ? longer.get() : first.data(); }
    std::shared_ptr<const region> mapped; ///< set instead of head: this process maps it already
    segment_layout layout;                ///< what was parsed of it, when `mapped` is set
};

/// Opens an existing segment by name, checks that it is a regular file of this user, and waits up to
/// opt.ready_timeout for its creator to publish it. Reads with pread, so a segment that is refused
/// never gets mapped. With `shared`, a segment this process already maps (see region_cache) is not
/// read: `mapped` and `layout` are set instead.
inline published_segment open_published(const options& opt, const std::string& posix_name, const std::string& op,
                                        bool shared = false)
{
    const std::string name = segment_name(posix_name);
    check_name(op, name);
    published_segment seg;
    seg.loc = location{backend_dir(opt), name};
    seg.fd = fd_guard(open_location(seg.loc, opt.read_only ? O_RDONLY : O_RDWR, 0));
    if (seg.fd.get() < 0) {
        raise_errno(op, name, errno, seg.loc.dir.empty() ? "shm_open" : "open");
    }
    const auto deadline = std::chrono::steady_clock::now() + opt.ready_timeout;
    auto pause = std::chrono::microseconds(20);
    for (;;) {
        struct stat st {};
        if (retry_eintr([&] { return sys().fstat(seg.fd.get(), &st); }) != 0) {
            raise_errno(op, name, errno, "fstat");
        }
        if (!S_ISREG(st.st_mode)) {
            raise<format_error>(op, name, "not a regular file", "remove it or use another name", errno_code(EINVAL));
        }
        if (!is_own_uid(st.st_uid) && !opt.allow_other_users) {
            raise<permission_denied>(op, name,
                                     "the segment belongs to uid " + std::to_string(st.st_uid) + ", not to uid " +
                                         std::to_string(current_uid()),
                                     "attach as its owner, or set options::allow_other_users if you trust it",
                                     errno_code(EACCES));
        }
        seg.size = static_cast<std::size_t>(st.st_size);
        seg.id = id_of(st);
        seg.st = st;
        if (shared) {
            seg.mapped = attached_regions().find(seg.id, !opt.read_only, seg.size, seg.layout);
            if (seg.mapped) {
                return seg;
            }
        }
        // One read of the first page (the magic, and every header ndshm writes), or of all of a small
        // segment (its trailer too).
        const std::size_t first = seg.size <= small_segment ? seg.size : std::min<std::size_t>(seg.size, 4096);
        seg.head_size = read_at(seg.fd.get(), seg.first.data(), first, 0, op, name);
        if (!unpublished(seg.first.data(), seg.head_size)) {
            // The creator stores the magic's first byte last, with release order: pread copies the bytes
            // in order, so seeing it means the rest of the page was complete; the fence orders what this
            // thread reads later (the trailer, the data) after it.
            std::atomic_thread_fence(std::memory_order_acquire);
            if (seg.head_size >= 12 && seg.first[0] == static_cast<unsigned char>(npy_magic[0])) {
                const std::size_t want = std::min({seg.size, head_limit, npy_header_end(seg.first.data())});
                if (want > seg.head_size) { // a longer header than ndshm writes: read the rest
                    seg.longer.reset(new unsigned char[want]);
                    std::memcpy(seg.longer.get(), seg.first.data(), seg.head_size);
                    seg.head_size += read_at(seg.fd.get(), seg.longer.get() + seg.head_size, want - seg.head_size,
                                             seg.head_size, op, name);
                }
            }
            return seg;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            raise<format_error>(op, name,
                                "the segment is unfinished: its creator has not published it (still writing, "
                                "or it died while writing)",
                                "retry later or raise options::ready_timeout; if its creator is dead, remove it "
                                "with `ndshm gc` or ndshm::unlink",
                                errno_code(EAGAIN));
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(10000));
    }
}

/// Maps all of a published segment. A sparse segment (one whose writer left holes) is reserved first,
/// or refused with out_of_space: a mapping ndshm hands out never raises SIGBUS on a touch.
inline std::shared_ptr<mapping> map_published(const published_segment& seg, const options& opt, const std::string& op)
{
    if (seg.size == 0) {
        raise<format_error>(op, seg.loc.name, "the segment is empty", "remove it or use another name",
                            errno_code(EINVAL));
    }
    reserve_holes(
        seg.fd.get(), seg.st, !opt.read_only, !opt.read_only,
        [&] { return fd_guard(open_location(seg.loc, O_RDWR, 0)); }, op, seg.loc.name, "segment",
        seg.loc.dir.empty() ? std::string(posix_shm_dir) : seg.loc.dir, "");
    unsigned char* base = map_fd(seg.fd.get(), seg.size, !opt.read_only, opt.populate, op, seg.loc.name);
    auto m = std::make_shared<mapping>(seg.loc, base, seg.size, !opt.read_only);
    m->set_id(seg.id);
    return m;
}

/// Opens, waits for publication and maps all of an existing segment. The caller parses its contents.
inline std::shared_ptr<mapping> open_segment(const options& opt, const std::string& name, const std::string& op)
{
    return map_published(open_published(opt, name, op), opt, op);
}

/// Checks a copy of ndshm's trailer against the .npy header. Throws format_error.
inline void check_trailer(const trailer& t, const npy_info& info, const std::string& name, const std::string& op)
{
    const auto bad = [&](const std::string& why, const std::string& fix) {
        raise<format_error>(op, name, why, fix, errno_code(EILSEQ));
    };
    if (t.version != trailer_version || t.size != sizeof(trailer)) {
        bad("trailer format version " + std::to_string(t.version) + " is not supported (this ndshm reads version " +
                std::to_string(trailer_version) + ")",
            "use the ndshm version that made the segment");
    }
    if (t.data_offset != info.data_offset || t.data_bytes != info.nbytes) {
        bad("corrupt segment: the trailer disagrees with the .npy header about the data",
            "the segment was damaged; recreate it");
    }
    if (t.state != state_ready) {
        bad("the segment is unfinished (trailer state is not ready)", "retry later or remove it with `ndshm gc`");
    }
}

/// Offset of ndshm's trailer in a segment of `size` bytes holding `info`'s data, or SIZE_MAX if no
/// trailer fits there.
inline std::size_t trailer_offset_in(const npy_info& info, std::size_t size) noexcept
{
    const std::size_t off = trailer_offset(info.data_offset + info.nbytes);
    return off > size || size - off < sizeof(trailer) ? SIZE_MAX : off;
}

/// Reads and validates ndshm's trailer in a mapped segment; nullptr for a foreign segment.
inline trailer* find_trailer(const mapping& m, const npy_info& info, const std::string& op)
{
    const std::size_t off = trailer_offset_in(info, m.size());
    if (off == SIZE_MAX) {
        return nullptr;
    }
    auto* t = reinterpret_cast<trailer*>(m.base() + off);
    if (std::memcmp(t->magic, trailer_magic, sizeof trailer_magic) != 0) {
        return nullptr;
    }
    trailer copy;
    std::memcpy(&copy, t, sizeof copy);
    copy.state = load_acquire(t->state);
    check_trailer(copy, info, m.name(), op);
    return t;
}

/// Opens, parses and maps a published `.npy` segment: header and trailer are read and checked with
/// pread before anything is mapped, so attach costs no page fault. `kind` is the trailer's kind, or 0
/// for a foreign segment (no trailer).
inline std::shared_ptr<mapping> open_npy_segment(const options& opt, const std::string& name, const std::string& op,
                                                 npy_info& info, std::uint32_t& kind)
{
    const published_segment seg = open_published(opt, name, op, !opt.populate);
    if (seg.mapped) {
        info = seg.layout.info;
        kind = seg.layout.kind;
        auto m = std::make_shared<mapping>(seg.loc, seg.mapped, !opt.read_only);
        m->set_id(seg.id);
        if (seg.layout.trailer_off != SIZE_MAX) {
            m->set_trailer(reinterpret_cast<trailer*>(m->base() + seg.layout.trailer_off));
        }
        return m;
    }
    info = parse_npy(seg.head(), seg.head_size, name, seg.size);
    kind = 0;
    // The trailer, from the bytes already read or with one more pread (cheaper than the page fault of
    // reading it through the mapping).
    const std::size_t off = trailer_offset_in(info, seg.size);
    trailer copy{};
    bool found = false;
    if (off != SIZE_MAX) {
        if (off + sizeof copy <= seg.head_size) {
            std::memcpy(&copy, seg.head() + off, sizeof copy);
            found = true;
        } else {
            found = read_at(seg.fd.get(), &copy, sizeof copy, off, op, name) == sizeof copy;
        }
        found = found && std::memcmp(copy.magic, trailer_magic, sizeof trailer_magic) == 0;
    }
    if (found) {
        check_trailer(copy, info, name, op);
        kind = copy.kind;
    }
    auto m = map_published(seg, opt, op);
    if (found) {
        m->set_trailer(reinterpret_cast<trailer*>(m->base() + off));
    }
    if (seg.head_size >= info.data_offset) {
        remember_layout(*m, info, kind, seg.head()); // the bytes read: the mapping stays untouched
    }
    return m;
}

/// Records `owner` as the segment's owner in its trailer, which is what `ndshm gc` checks to decide
/// whether the owner is dead. Each field is stored atomically; a reader that sees a pair that names no
/// live process should read it again before acting on it, since a transfer may be under way.
inline void set_trailer_owner(trailer& t, process_identity owner) noexcept
{
    __atomic_store_n(&t.creator_start, owner.start, __ATOMIC_RELEASE);
    __atomic_store_n(&t.creator_pid, owner.pid, __ATOMIC_RELEASE);
}

/// Transfers ownership of a segment to this process: the trailer names this process as its owner (for
/// gc), the session registers the name (free_session), and the last handle of `m` in this process
/// unlinks it. `m` must be a writable mapping of an ndshm segment.
inline void take_ownership(mapping& m)
{
    if (m.get_trailer() != nullptr && m.writable()) {
        set_trailer_owner(*m.get_trailer(), this_process());
    }
    m.own();
}

} // namespace ndshm::detail

#endif
