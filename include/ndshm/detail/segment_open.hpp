/// @file detail/segment_open.hpp
/// Opening an existing segment: by name, as a regular file of this user, waiting for its creator to
/// publish it, reading its first bytes with pread (so a segment that is refused never gets mapped),
/// then mapping it. All system calls go through sys() (detail/sys.hpp).
#ifndef NDSHM_DETAIL_SEGMENT_OPEN_HPP
#define NDSHM_DETAIL_SEGMENT_OPEN_HPP

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "../error.hpp"
#include "../options.hpp"
#include "config.hpp"
#include "mapping.hpp"
#include "npy.hpp"
#include "region_cache.hpp"
#include "segment_location.hpp"
#include "segment_names.hpp"
#include "segment_space.hpp"
#include "sync.hpp"
#include "sys.hpp"

namespace ndshm::detail {

/// Reads up to `n` bytes at `off` with pread (no page of the segment gets mapped or faulted in);
/// returns the count read. Throws on an I/O error.
NDSHM_DECL std::size_t read_at(int fd, void* buf, std::size_t n, std::size_t off, const std::string& op,
                               const std::string& name);

/// True if `uid` is this process's effective uid. The last answer of geteuid() is remembered, so that
/// attach makes no system call for it; any other uid asks again. A process that changed its effective
/// uid thus still accepts segments of the uid it ran as before, never those of a uid it did not have.
NDSHM_DECL bool is_own_uid(uid_t uid) noexcept;

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
NDSHM_DECL published_segment open_published(const options& opt, const std::string& posix_name, const std::string& op,
                                            bool shared = false);

/// Maps all of a published segment; its location moves into the mapping. A sparse segment (one whose
/// writer left holes) is reserved first, or refused with out_of_space: a mapping ndshm hands out never
/// raises SIGBUS on a touch.
NDSHM_DECL std::shared_ptr<mapping> map_published(published_segment& seg, const options& opt, const std::string& op);

/// Opens, waits for publication and maps all of an existing segment. The caller parses its contents.
inline std::shared_ptr<mapping> open_segment(const options& opt, const std::string& name, const std::string& op)
{
    published_segment seg = open_published(opt, name, op);
    return map_published(seg, opt, op);
}

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

std::size_t read_at(int fd, void* buf, std::size_t n, std::size_t off, const std::string& op, const std::string& name)
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

bool is_own_uid(uid_t uid) noexcept
{
    static std::atomic<uid_t> last{static_cast<uid_t>(-1)};
    if (uid == last.load(std::memory_order_relaxed) && uid != static_cast<uid_t>(-1)) {
        return true;
    }
    const uid_t me = current_uid();
    last.store(me, std::memory_order_relaxed);
    return uid == me;
}

published_segment open_published(const options& opt, const std::string& posix_name, const std::string& op, bool shared)
{
    published_segment seg;
    seg.loc.name = segment_name(posix_name);
    const std::string& name = seg.loc.name;
    check_name(op, name);
    seg.loc.dir = backend_dir(opt);
    seg.fd = fd_guard(open_location(seg.loc, opt.read_only ? O_RDONLY : O_RDWR, 0));
    if (seg.fd.get() < 0) {
        raise_errno(op, name, errno, open_call(seg.loc));
    }
    // The clock is read only once the segment turns out unpublished: a published one costs no call.
    std::chrono::steady_clock::time_point deadline{};
    bool waited = false;
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
            raise<permission_denied>(op, name, owned_by_other("the segment", st.st_uid),
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
            if (seg.first[0] == static_cast<unsigned char>(npy_magic[0])) {
                const std::size_t want = npy_header_bytes(seg.first.data(), seg.head_size, seg.size);
                if (want > seg.head_size) { // a longer header than ndshm writes: read the rest
                    seg.longer.reset(new unsigned char[want]);
                    std::memcpy(seg.longer.get(), seg.first.data(), seg.head_size);
                    seg.head_size += read_at(seg.fd.get(), seg.longer.get() + seg.head_size, want - seg.head_size,
                                             seg.head_size, op, name);
                }
            }
            return seg;
        }
        if (!waited) {
            deadline = deadline_in(opt.ready_timeout);
            waited = true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            raise<format_error>(op, name,
                                "the segment is unfinished: its creator has not published it (still writing, "
                                "or it died while writing)",
                                "retry later or raise options::ready_timeout; if its creator is dead, remove it "
                                "with `ndshm gc` or ndshm::unlink",
                                make_error_code(errc::unfinished));
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(10000));
    }
}

std::shared_ptr<mapping> map_published(published_segment& seg, const options& opt, const std::string& op)
{
    if (seg.size == 0) {
        raise<format_error>(op, seg.loc.name, "the segment is empty", "remove it or use another name",
                            errno_code(EINVAL));
    }
    reserve_holes(
        seg.fd.get(), seg.st, !opt.read_only, !opt.read_only,
        [&] { return fd_guard(open_location(seg.loc, O_RDWR, 0)); }, op, seg.loc.name, "segment",
        [&] { return shown_dir(seg.loc.dir); }, "");
    unsigned char* base = map_fd(seg.fd.get(), seg.size, !opt.read_only, opt.populate, op, seg.loc.name);
    auto m = std::make_shared<mapping>(std::move(seg.loc), base, seg.size, !opt.read_only);
    m->set_id(seg.id);
    return m;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
