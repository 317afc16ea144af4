/// @file detail/store_impl.hpp
/// The store's internals: segment names derived from a file's identity, the load lock that lets
/// exactly one process load a given array, and appending rows to a `.npy` file atomically.
#ifndef NDSHM_DETAIL_STORE_IMPL_HPP
#define NDSHM_DETAIL_STORE_IMPL_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#ifndef _WIN32
#include <sys/file.h>
#include <sys/stat.h>
#endif

#include "../error.hpp"
#include "array_index.hpp"
#include "config.hpp"
#include "file_io.hpp"
#include "mix.hpp"
#include "npy.hpp"
#include "segment_location.hpp"
#include "segment_names.hpp"
#include "sys.hpp"

namespace ndshm::detail {

inline std::uint64_t fnv1a(const std::string& s, std::uint64_t h) noexcept
{
    for (const char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ull;
    }
    return h;
}

/// The segment name of rows [begin, end) of the file behind `st`, stored under `key` in the store at
/// the canonical directory `dir`: `ndshm_<uid tag>_k` + 15 base-32 characters (75 bits) of a hash of
/// all of that and the file's identity (device, inode, size, modification time). Any process derives
/// the same name for the same file; a rewritten file (a new inode, size or mtime) gets a new one.
/// At most 30 characters.
NDSHM_DECL std::string store_segment_name(const std::string& dir, const std::string& key, const struct stat& st,
                                          std::size_t begin, std::size_t end);

/// An exclusive lock that serialises the loading of one segment: an flock on the lock file
/// `<segment>.lock` beside it (in /dev/shm or the directory backend). A process that wants to load
/// waits here while another loads: for as long as that one is alive, since the kernel releases an
/// flock when its holder dies. The holder removes the lock file before releasing it; a waiter that
/// then gets the lock on the removed file notices and locks the current one instead.
class load_lock {
public:
    NDSHM_DECL load_lock(const location& segment, const std::string& op);
    load_lock(const load_lock&) = delete;
    load_lock& operator=(const load_lock&) = delete;
    ~load_lock()
    {
        (void)unlink_if_same(m_loc, m_id);
        m_fd.reset(); // releases the lock
    }

private:
    location m_loc;
    fd_guard m_fd;
    file_id m_id;
};

/// Appends rows to the C-order `.npy` file at `path` (creating it if it does not exist): the rows'
/// dtype `t` and shape `rows_shape` (k rows, or one row without the leading axis), `nbytes` bytes at
/// `data` in C order. Atomic: the new file is written beside the old one and renamed over it, under
/// an flock on the old one so that concurrent appends all land.
NDSHM_DECL void append_npy_rows(const std::string& path, dtype t, const std::vector<std::size_t>& rows_shape,
                                const void* data, std::size_t nbytes, const std::string& op);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

std::string store_segment_name(const std::string& dir, const std::string& key, const struct stat& st, std::size_t begin,
                               std::size_t end)
{
    std::string id = dir;
    id += '\0';
    id += key;
    for (const std::uint64_t v : {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                                  static_cast<std::uint64_t>(st.st_size), static_cast<std::uint64_t>(st.st_mtim.tv_sec),
                                  static_cast<std::uint64_t>(st.st_mtim.tv_nsec), static_cast<std::uint64_t>(begin),
                                  static_cast<std::uint64_t>(end)}) {
        id += '\0';
        id += std::to_string(v);
    }
    const std::uint64_t h1 = mix64(fnv1a(id, 0xcbf29ce484222325ull));
    const std::uint64_t h2 = mix64(fnv1a(id, h1 ^ 0x9e3779b97f4a7c15ull));
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    std::string name = user_prefix(current_uid()) + "k";
    for (int i = 0; i < 15; ++i) { // 12 groups of 5 bits from h1, 3 from h2
        const std::uint64_t v = i < 12 ? h1 >> (5 * i) : h2 >> (5 * (i - 12));
        name += alphabet[v & 31u];
    }
    return name;
}

load_lock::load_lock(const location& segment, const std::string& op) : m_loc{segment.dir, segment.name + ".lock"}
{
    const std::string call = open_call(m_loc);
    for (;;) {
        fd_guard fd(open_location(m_loc, O_RDWR | O_CREAT, 0600));
        if (fd.get() < 0) {
            raise_errno(op, m_loc.name, errno, call);
        }
        // A lock file planted by another user could be held forever: refuse it instead of waiting.
        struct stat owner {};
        if (retry_eintr([&] { return sys().fstat(fd.get(), &owner); }) != 0) {
            raise_errno(op, m_loc.name, errno, "fstat");
        }
        if (owner.st_uid != current_uid()) {
            raise<permission_denied>(op, m_loc.name, owned_by_other("the store's load lock", owner.st_uid),
                                     "remove it (ndshm rm), or give this user's stores a private directory "
                                     "backend (options::directory or NDSHM_DIR)",
                                     errno_code(EACCES));
        }
        if (retry_eintr([&] { return sys().flock(fd.get(), LOCK_EX); }) != 0) {
            raise_errno(op, m_loc.name, errno, "flock");
        }
        fd_guard now(open_location(m_loc, O_RDONLY, 0));
        if (now.get() < 0 && errno != ENOENT) {
            raise_errno(op, m_loc.name, errno, call);
        }
        struct stat mine {};
        struct stat there {};
        if (now.get() >= 0 && retry_eintr([&] { return sys().fstat(fd.get(), &mine); }) == 0 &&
            retry_eintr([&] { return sys().fstat(now.get(), &there); }) == 0 && id_of(mine) == id_of(there)) {
            m_fd = std::move(fd);
            m_id = id_of(mine);
            return;
        }
    }
}

void append_npy_rows(const std::string& path, dtype t, const std::vector<std::size_t>& rows_shape, const void* data,
                     std::size_t nbytes, const std::string& op)
{
    for (;;) {
        const file_lock lock(path, op);
        if (!lock.held()) {
            if (write_npy_file(path, t, rows_shape, false, data, nbytes, op, false)) {
                return;
            }
            continue; // someone created it meanwhile: append to theirs
        }
        const struct stat st = stat_fd(lock.fd(), op, path);
        const npy_info old = read_npy_info(lock.fd(), static_cast<std::size_t>(st.st_size), op, path);
        if (old.type != t) {
            raise<dtype_mismatch>(
                op, path, std::string("the file holds ") + dtype_name(old.type) + ", the rows are " + dtype_name(t),
                "append rows of the file's element type", errno_code(EINVAL));
        }
        if (old.shape.empty()) {
            raise<error>(op, path, "the file holds a 0-dimensional array, which has no rows to append to",
                         "put a new array instead", errno_code(EINVAL));
        }
        if (old.fortran_order && old.shape.size() > 1) {
            raise<error>(op, path, "the file is in Fortran order; appending rows needs C order",
                         "rewrite it in C order (put) before appending", errno_code(EINVAL));
        }
        const std::vector<std::size_t> row(old.shape.begin() + 1, old.shape.end());
        std::size_t k = 0;
        if (rows_shape.size() == old.shape.size() && std::equal(row.begin(), row.end(), rows_shape.begin() + 1)) {
            k = rows_shape[0];
        } else if (rows_shape == row) {
            k = 1;
        } else {
            raise<error>(op, path,
                         "rows of shape " + shape_string(rows_shape) + " do not fit an array of shape " +
                             shape_string(old.shape),
                         "append rows whose shape after the first axis is " + shape_string(row), errno_code(EINVAL));
        }
        std::vector<std::size_t> shape = old.shape;
        shape[0] += k;
        const std::vector<unsigned char> head = npy_file_header(t, shape, false);
        atomic_file f(path, op);
        f.write_at(head.data(), head.size(), 0);
        // The old rows, in pieces; then the new ones.
        std::vector<unsigned char> buf(std::min<std::size_t>(old.nbytes, std::size_t(4) << 20));
        for (std::size_t done = 0; done < old.nbytes;) {
            const std::size_t n = std::min(buf.size(), old.nbytes - done);
            read_exact(lock.fd(), buf.data(), n, old.data_offset + done, op, path);
            f.write_at(buf.data(), n, head.size() + done);
            done += n;
        }
        if (nbytes != 0) {
            f.write_at(data, nbytes, head.size() + old.nbytes);
        }
        (void)f.commit(head.size() + old.nbytes + nbytes);
        return;
    }
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
