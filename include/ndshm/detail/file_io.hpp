/// @file detail/file_io.hpp
/// Files on disk: atomic writes (temporary file in the same directory, fsync, rename), reading a
/// `.npy` header and a range of its rows with pread, mapping files, and per-file locks. Every system
/// call goes through sys().
#ifndef NDSHM_DETAIL_FILE_IO_HPP
#define NDSHM_DETAIL_FILE_IO_HPP

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#ifndef _WIN32
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#ifndef RENAME_NOREPLACE
#define NDSHM_RENAME_NOREPLACE (1u << 0)
#else
#define NDSHM_RENAME_NOREPLACE RENAME_NOREPLACE
#endif

#include "../dtype.hpp"
#include "../error.hpp"
#include "config.hpp"
#include "mapping.hpp"
#include "npy.hpp"
#include "segment_location.hpp"
#include "segment_names.hpp"
#include "segment_open.hpp"
#include "segment_space.hpp"
#include "sys.hpp"

namespace ndshm::detail {

inline constexpr unsigned rename_noreplace = NDSHM_RENAME_NOREPLACE;

/// Throws the ndshm exception that fits errno value `err` for operation `op` on the file `path`.
[[noreturn]] NDSHM_DECL void raise_file_errno(const std::string& op, const std::string& path, int err,
                                              const std::string& what_failed);

/// The directory part of `path` ("." if it has none) and its last component.
NDSHM_DECL std::string dir_of(const std::string& path);
NDSHM_DECL std::string base_of(const std::string& path);

/// Opens `path` with open(2) flags (O_CLOEXEC added); throws on failure.
NDSHM_DECL fd_guard open_file(const std::string& path, int flags, mode_t mode, const std::string& op);

NDSHM_DECL struct stat stat_fd(int fd, const std::string& op, const std::string& path);

/// Writes all of `data` at `off`; throws on failure.
NDSHM_DECL void write_all(int fd, const void* data, std::size_t n, std::size_t off, const std::string& op,
                          const std::string& path);

/// Reads exactly `n` bytes at `off`; a file that ends earlier is format_error (it is shorter than
/// its header says, or it shrank while being read).
NDSHM_DECL void read_exact(int fd, void* buf, std::size_t n, std::size_t off, const std::string& op,
                           const std::string& path);

/// A file written under a temporary name in the same directory and renamed over its final name by
/// commit(). Until then the final name is untouched; if the writer dies, only the temporary file
/// (`.<name>.<random>.tmp`) is left. The destructor removes an uncommitted temporary file.
class atomic_file {
public:
    NDSHM_DECL atomic_file(std::string path, std::string op);
    atomic_file(const atomic_file&) = delete;
    atomic_file& operator=(const atomic_file&) = delete;
    ~atomic_file()
    {
        if (!m_committed) {
            m_fd.reset();
            (void)sys().unlinkat(AT_FDCWD, m_temp.c_str(), 0);
        }
    }

    int fd() const noexcept { return m_fd.get(); }
    const std::string& temp_path() const noexcept { return m_temp; }

    void write_at(const void* data, std::size_t n, std::size_t off)
    {
        write_all(m_fd.get(), data, n, off, m_op, m_path);
    }

    /// Sets the size to `total` (unwritten gaps read as zeros), flushes the data to disk and renames
    /// the file over its final name (or, with `replace` false, only if that name does not exist yet).
    /// @returns false if `replace` is false and the final name exists (the temporary file is removed)
    NDSHM_DECL bool commit(std::size_t total, bool replace = true);

private:
    std::string m_path;
    std::string m_op;
    std::string m_temp;
    fd_guard m_fd;
    bool m_committed = false;
};

/// The first bytes of a `.npy` file for an array of `t` and `shape`: header padded so that the data
/// starts at a multiple of 64, as NumPy writes it, magic complete.
NDSHM_DECL std::vector<unsigned char> npy_file_header(dtype t, const std::vector<std::size_t>& shape, bool fortran);

/// Writes a whole `.npy` file atomically from `nbytes` bytes at `data` (already in the order the
/// header states). With `replace` false, fails (returns false) if `path` exists.
NDSHM_DECL bool write_npy_file(const std::string& path, dtype t, const std::vector<std::size_t>& shape, bool fortran,
                               const void* data, std::size_t nbytes, const std::string& op, bool replace = true);

/// An open `.npy` file and what its header says.
struct npy_file {
    std::string path;
    fd_guard fd;
    struct stat st {};
    npy_info info;
};

/// Reads and checks the header of the open file `fd`: every number is checked against the file's
/// real size before it is used.
NDSHM_DECL npy_info read_npy_info(int fd, std::size_t size, const std::string& op, const std::string& path);

/// Opens a `.npy` file and parses its header (format_error if it is not a valid .npy).
NDSHM_DECL npy_file open_npy_file(const std::string& path, const std::string& op, int flags = O_RDONLY);

/// Throws dtype_mismatch unless the file at `path`, which holds `found`, may be read as T.
template <class T>
void check_file_dtype(const std::string& op, const std::string& path, dtype found)
{
    if (found != dtype_of<T>) {
        raise_dtype_mismatch(op, path, "file", found, dtype_of<T>, "read", " (read_npy_header tells it)",
                             errno_code(EINVAL));
    }
}

/// A resolved axis-0 row range of an array on disk.
struct row_slice {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::size_t row_elems = 1; ///< elements per row: prod(shape[1:])
    std::size_t row_bytes = 0;
    npy_info info; ///< the slice as an array: shape[0] = end - begin; data_offset unset
    bool whole = true;
};

/// Checks [begin, end) against the array's rows (end == SIZE_MAX: to the last row).
NDSHM_DECL row_slice resolve_rows(const npy_info& file, std::size_t begin, std::size_t end, const std::string& op,
                                  const std::string& path);

/// Reads the rows of `s` from the open `.npy` file into `dst` (s.info.nbytes bytes, in the file's
/// order), and nothing else of the data. A C-order range is one read; a Fortran-order range is one
/// read per column, each of the range's rows only.
NDSHM_DECL void read_rows(int fd, const npy_info& file, const row_slice& s, unsigned char* dst, const std::string& op,
                          const std::string& path);

/// Maps `len` bytes of the open file at `off` (rounded down to a page); returns the mapping and, in
/// `delta`, where byte `off` is in it. `other_fix` ("; or ...") follows the advice of an out_of_space
/// for a sparse file that cannot be reserved.
NDSHM_DECL std::shared_ptr<mapping> map_file_range(int fd, const std::string& path, std::size_t off, std::size_t len,
                                                   bool private_writable, const std::string& op, std::size_t& delta,
                                                   const std::string& other_fix);

/// Memory that is no file: a private anonymous mapping of `size` zero bytes, named `name` in messages.
NDSHM_DECL std::shared_ptr<mapping> map_anonymous(std::size_t size, const std::string& name, const std::string& op);

/// An exclusive flock on the file at `path` that is still the file at `path` when it is granted (a
/// writer renames new files over old ones: a lock on a replaced file protects nothing). Holds nothing
/// if the file does not exist. The kernel releases the lock if the holder dies.
class file_lock {
public:
    NDSHM_DECL file_lock(const std::string& path, const std::string& op);
    bool held() const noexcept { return m_fd.get() >= 0; }
    int fd() const noexcept { return m_fd.get(); }

private:
    fd_guard m_fd; // closing it releases the lock
};

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void raise_file_errno(const std::string& op, const std::string& path, int err, const std::string& what_failed)
{
    const std::string cause = what_failed + " failed: " + std::generic_category().message(err);
    const auto code = errno_code(err);
    switch (err) {
    case ENOENT:
        raise<not_found>(op, path, cause, "check the path (its directory must exist)", code);
    case EEXIST:
        raise<already_exists>(op, path, cause, "remove it or choose another path", code);
    case EACCES:
    case EPERM:
    case EROFS:
        raise<permission_denied>(op, path, cause, "check the permissions of the file and of its directory", code);
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        raise<out_of_space>(op, path, cause, "free space on the file system that holds it, or write elsewhere", code);
    case EMFILE:
    case ENFILE:
        raise<error>(op, path, cause, "too many open files; close some or raise the limit (ulimit -n)", code);
    default:
        raise<error>(op, path, cause, "", code);
    }
}

std::string dir_of(const std::string& path)
{
    const auto slash = path.find_last_of(path_separators);
    if (slash == std::string::npos) {
        return ".";
    }
    return slash == 0 ? std::string("/") : path.substr(0, slash);
}

std::string base_of(const std::string& path)
{
    const auto slash = path.find_last_of(path_separators);
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

fd_guard open_file(const std::string& path, int flags, mode_t mode, const std::string& op)
{
    const int fd = retry_eintr([&] { return sys().openat(AT_FDCWD, path.c_str(), flags | O_CLOEXEC, mode); });
    if (fd < 0) {
        raise_file_errno(op, path, errno, "open");
    }
    return fd_guard(fd);
}

struct stat stat_fd(int fd, const std::string& op, const std::string& path)
{
    struct stat st {};
    if (retry_eintr([&] { return sys().fstat(fd, &st); }) != 0) {
        raise_file_errno(op, path, errno, "fstat");
    }
    return st;
}

void write_all(int fd, const void* data, std::size_t n, std::size_t off, const std::string& op, const std::string& path)
{
    const auto* p = static_cast<const unsigned char*>(data);
    while (n != 0) {
        // Linux writes at most about 2 GiB per call; ask for no more.
        const std::size_t chunk = std::min<std::size_t>(n, std::size_t(1) << 30);
        const ssize_t r = sys().pwrite(fd, p, chunk, static_cast<off_t>(off));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            raise_file_errno(op, path, errno, "write");
        }
        if (r == 0) {
            raise_file_errno(op, path, EIO, "write");
        }
        p += r;
        n -= static_cast<std::size_t>(r);
        off += static_cast<std::size_t>(r);
    }
}

void read_exact(int fd, void* buf, std::size_t n, std::size_t off, const std::string& op, const std::string& path)
{
    const std::size_t got = read_at(fd, buf, n, off, op, path);
    if (got != n) {
        raise<format_error>(op, path,
                            "the file ends after " + std::to_string(off + got) + " bytes, but " +
                                std::to_string(off + n) + " were expected (truncated, or changed while being read)",
                            "recreate the file", make_error_code(errc::truncated));
    }
}

atomic_file::atomic_file(std::string path, std::string op) : m_path(std::move(path)), m_op(std::move(op))
{
    const std::string base = base_of(m_path);
    if (base.empty() || base == "." || base == "..") {
        raise<error>(m_op, m_path, "the path does not name a file", "give a file name", errno_code(EINVAL));
    }
    // The random part of a generated segment name makes the temporary name unguessable.
    const std::string token = generate_name().substr(user_prefix(current_uid()).size());
    m_temp = dir_of(m_path) + "/." + base.substr(0, 120) + "." + token + ".tmp";
    m_fd = open_file(m_temp, O_WRONLY | O_CREAT | O_EXCL, 0666, m_op);
}

bool atomic_file::commit(std::size_t total, bool replace)
{
    if (retry_eintr([&] { return sys().ftruncate(m_fd.get(), static_cast<off_t>(total)); }) != 0) {
        raise_file_errno(m_op, m_path, errno, "ftruncate");
    }
    if (retry_eintr([&] { return sys().fsync(m_fd.get()); }) != 0) {
        raise_file_errno(m_op, m_path, errno, "fsync");
    }
    m_fd.reset();
    const int r = retry_eintr([&] {
        return sys().renameat2(AT_FDCWD, m_temp.c_str(), AT_FDCWD, m_path.c_str(), replace ? 0u : rename_noreplace);
    });
    if (r != 0) {
        const int err = errno;
        if (!replace && err == EEXIST) {
            return false;
        }
        raise_file_errno(m_op, m_path, err, "rename");
    }
    m_committed = true;
    // Make the rename itself durable; a file system that cannot sync a directory still has the file.
    const int dfd = retry_eintr(
        [&] { return sys().openat(AT_FDCWD, dir_of(m_path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0); });
    if (dfd >= 0) {
        fd_guard dir(dfd);
        (void)retry_eintr([&] { return sys().fsync(dir.get()); });
    }
    return true;
}

std::vector<unsigned char> npy_file_header(dtype t, const std::vector<std::size_t>& shape, bool fortran)
{
    const std::size_t dict = npy_dict(t, shape, fortran).size();
    std::size_t offset = (npy_prefix_bytes(1) + dict + 1 + 63) / 64 * 64;
    if (npy_version_for(offset) != 1) {
        offset = (npy_prefix_bytes(2) + dict + 1 + 63) / 64 * 64;
    }
    std::vector<unsigned char> head(offset);
    (void)write_npy_header(head.data(), offset, t, shape, fortran);
    head[0] = static_cast<unsigned char>(npy_magic[0]);
    return head;
}

bool write_npy_file(const std::string& path, dtype t, const std::vector<std::size_t>& shape, bool fortran,
                    const void* data, std::size_t nbytes, const std::string& op, bool replace)
{
    const std::vector<unsigned char> head = npy_file_header(t, shape, fortran);
    atomic_file f(path, op);
    f.write_at(head.data(), head.size(), 0);
    if (nbytes != 0) {
        f.write_at(data, nbytes, head.size());
    }
    return f.commit(head.size() + nbytes, replace);
}

npy_info read_npy_info(int fd, std::size_t size, const std::string& op, const std::string& path)
{
    unsigned char prefix[12] = {};
    const std::size_t got = read_at(fd, prefix, sizeof prefix, 0, op, path);
    std::size_t want = got;
    if (got >= 10 && std::memcmp(prefix, npy_magic, sizeof npy_magic) == 0) {
        const std::size_t hlen = npy_header_end(prefix); // prefix is zero-filled past what was read
        if (hlen > head_limit && hlen <= size) {
            raise<format_error>(op, path, "the .npy header is " + std::to_string(hlen) + " bytes long",
                                "ndshm reads headers of up to " + std::to_string(head_limit) + " bytes",
                                make_error_code(errc::unsupported_format));
        }
        want = std::min(hlen, size);
    }
    std::vector<unsigned char> head(std::max(want, sizeof prefix));
    std::memcpy(head.data(), prefix, sizeof prefix);
    if (want > got) {
        read_exact(fd, head.data() + got, want - got, got, op, path);
    }
    return parse_npy(head.data(), want, path, size);
}

npy_file open_npy_file(const std::string& path, const std::string& op, int flags)
{
    npy_file f;
    f.path = path;
    f.fd = open_file(path, flags, 0, op);
    f.st = stat_fd(f.fd.get(), op, path);
    if (!S_ISREG(f.st.st_mode)) {
        raise<format_error>(op, path, "not a regular file", "give the path of a .npy file", errno_code(EINVAL));
    }
    f.info = read_npy_info(f.fd.get(), static_cast<std::size_t>(f.st.st_size), op, path);
    return f;
}

row_slice resolve_rows(const npy_info& file, std::size_t begin, std::size_t end, const std::string& op,
                       const std::string& path)
{
    row_slice s;
    s.info = file;
    if (file.shape.empty()) {
        if (begin != 0 || end != SIZE_MAX) {
            raise<error>(op, path, "the array is 0-dimensional: it has no rows to select",
                         "read it whole (row_range{})", errno_code(EINVAL));
        }
        s.row_bytes = file.nbytes;
        s.end = 1;
        return s;
    }
    const std::size_t rows = file.shape[0];
    if (end == SIZE_MAX) {
        end = rows;
    }
    if (begin > end || end > rows) {
        raise<error>(op, path,
                     "row range [" + std::to_string(begin) + ", " + std::to_string(end) + ") is outside the array's " +
                         std::to_string(rows) + " rows",
                     "ask for rows within [0, " + std::to_string(rows) + ")", errno_code(EINVAL));
    }
    std::vector<std::size_t> rest(file.shape.begin() + 1, file.shape.end());
    std::size_t row_nbytes = 0;
    if (!checked_nbytes(rest, itemsize(file.type), s.row_elems, row_nbytes)) {
        raise<format_error>(op, path, "the shape's element count overflows", "recreate the file",
                            make_error_code(errc::corrupt_header));
    }
    s.begin = begin;
    s.end = end;
    s.row_bytes = row_nbytes;
    s.whole = begin == 0 && end == rows;
    s.info.shape[0] = end - begin;
    s.info.size = (end - begin) * s.row_elems;
    s.info.nbytes = (end - begin) * row_nbytes;
    return s;
}

void read_rows(int fd, const npy_info& file, const row_slice& s, unsigned char* dst, const std::string& op,
               const std::string& path)
{
    if (s.info.nbytes == 0) {
        return;
    }
    if (!file.fortran_order || s.whole || s.row_elems == 1 || file.shape.size() < 2) {
        read_exact(fd, dst, s.info.nbytes, file.data_offset + s.begin * s.row_bytes, op, path);
        return;
    }
    const std::size_t item = itemsize(file.type);
    const std::size_t chunk = (s.end - s.begin) * item;
    for (std::size_t c = 0; c < s.row_elems; ++c) {
        read_exact(fd, dst + c * chunk, chunk, file.data_offset + (c * file.shape[0] + s.begin) * item, op, path);
    }
}

std::shared_ptr<mapping> map_file_range(int fd, const std::string& path, std::size_t off, std::size_t len,
                                        bool private_writable, const std::string& op, std::size_t& delta,
                                        const std::string& other_fix)
{
    // A sparse file on tmpfs would SIGBUS on the first read of a hole once the tmpfs is full.
    const struct stat st = stat_fd(fd, op, path);
    reserve_holes(
        fd, st, false, false,
        [&] {
            return fd_guard(retry_eintr(
                [&] { return sys().openat(AT_FDCWD, path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0); }));
        },
        op, path, "file",
        [&] {
            const std::string dir = dir_of(path);
            return dir.empty() ? std::string(".") : dir;
        },
        other_fix);
    const std::size_t page = page_size();
    const std::size_t start = off / page * page;
    delta = off - start;
    const std::size_t size = std::max<std::size_t>(delta + len, 1);
    const int prot = private_writable ? PROT_READ | PROT_WRITE : PROT_READ;
    const int flags = private_writable ? MAP_PRIVATE : MAP_SHARED;
    void* p = map_memory(size, prot, flags, fd, static_cast<off_t>(start));
    if (p == MAP_FAILED) {
        raise_file_errno(op, path, errno, "mmap");
    }
    return std::make_shared<mapping>(location{dir_of(path), base_of(path)}, static_cast<unsigned char*>(p), size,
                                     private_writable);
}

std::shared_ptr<mapping> map_anonymous(std::size_t size, const std::string& name, const std::string& op)
{
    void* p = map_memory(std::max<std::size_t>(size, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        raise_errno(op, name, errno, "mmap");
    }
    return std::make_shared<mapping>(location{dir_of(name), base_of(name)}, static_cast<unsigned char*>(p),
                                     std::max<std::size_t>(size, 1), true);
}

file_lock::file_lock(const std::string& path, const std::string& op)
{
    for (;;) {
        const int fd = retry_eintr([&] { return sys().openat(AT_FDCWD, path.c_str(), O_RDONLY | O_CLOEXEC, 0); });
        if (fd < 0) {
            if (errno == ENOENT) {
                return;
            }
            raise_file_errno(op, path, errno, "open");
        }
        fd_guard guard(fd);
        if (retry_eintr([&] { return sys().flock(fd, LOCK_EX); }) != 0) {
            raise_file_errno(op, path, errno, "flock");
        }
        const struct stat mine = stat_fd(fd, op, path);
        struct stat now {};
        if (retry_eintr([&] { return sys().fstatat(AT_FDCWD, path.c_str(), &now, 0); }) == 0 &&
            id_of(now) == id_of(mine)) {
            m_fd = std::move(guard);
            return;
        }
        // Replaced or removed while waiting: lock the file that is there now.
    }
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#undef NDSHM_RENAME_NOREPLACE

#endif
