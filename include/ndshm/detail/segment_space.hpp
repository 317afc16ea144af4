/// @file detail/segment_space.hpp
/// Room for a segment: free space on its file system, the out_of_space error that names the fix, and
/// reserving the holes of a sparse file so that touching its mapping never raises SIGBUS.
#ifndef NDSHM_DETAIL_SEGMENT_SPACE_HPP
#define NDSHM_DETAIL_SEGMENT_SPACE_HPP

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../error.hpp"
#include "config.hpp"
#include "segment_location.hpp"
#include "sys.hpp"

namespace ndshm::detail {

/// Bytes free on the file system of `fd`, or SIZE_MAX if unknown.
NDSHM_DECL std::size_t free_bytes(int fd) noexcept;

/// How to free or add room in `where` (the directory that is full), for the fix of an out_of_space:
/// ndshm's own tools, then `docker_hint` (see docker_shm_hint) and `other_fix`.
NDSHM_DECL std::string free_space_fix(const std::string& where, const std::string& docker_hint,
                                      const std::string& other_fix = "");

/// " (in Docker: docker run --shm-size=<N>g ...)": the size of a container's /dev/shm that has room
/// for `bytes` more ("" on Windows, where segments are files in a directory).
NDSHM_DECL std::string docker_shm_hint(std::uint64_t bytes);

/// Throws out_of_space for a segment at `l` that needs `need` bytes where `avail` are free (SIZE_MAX:
/// unknown); `err` is the errno behind it.
[[noreturn]] NDSHM_DECL void raise_out_of_space(const std::string& op, const location& l, std::size_t need,
                                                std::size_t avail, int err);

/// True if the file open as `fd` lives on a file system whose pages are memory (tmpfs, /dev/shm,
/// hugetlbfs): there, touching an unreserved page of a mapping (even to read it) needs a free page, and
/// raises SIGBUS when there is none. Unknown (fstatfs failed): true, the safe answer.
NDSHM_DECL bool memory_backed(int fd) noexcept;

/// Bytes of the file of `st` that have no storage behind them: the holes that a writer that extends a
/// file with ftruncate (NumPy's open_memmap does) leaves.
inline std::uint64_t unreserved_bytes(const struct stat& st) noexcept
{
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const auto have = static_cast<std::uint64_t>(st.st_blocks) * 512;
    return have >= size ? 0 : size - have;
}

/// The part of reserve_holes that does not depend on its `Reopen`: the file of `st` has `missing`
/// unreserved bytes; `reopen(reopen_ctx)` gives the writable descriptor when `fd_writable` is false.
NDSHM_DECL void reserve_missing_holes(int fd, const struct stat& st, std::uint64_t missing, bool writable_mapping,
                                      bool fd_writable, fd_guard (*reopen)(const void*), const void* reopen_ctx,
                                      const std::string& op, const std::string& name, const char* noun,
                                      const std::string& where, const std::string& other_fix);

/// Makes a mapping of the file open as `fd` (with stat `st`) safe from SIGBUS: if the file has holes
/// that a touch of the mapping would have to fill (any hole under a writable mapping; under a read-only
/// one, on a memory-backed file system only), reserves them with fallocate, which changes neither the
/// contents nor the size. `fd_writable` says whether `fd` may reserve; if not, `reopen()` gives a
/// writable descriptor of the same name (a read-only handle of a segment this user may write). Throws
/// out_of_space, naming the fix, when the holes cannot be reserved: not enough free space, or no
/// permission to write. `noun` ("segment", "file") and `where()` (its directory, asked only when there
/// are holes: a file without any costs no string) are for messages, `other_fix` a further way out.
template <class Reopen, class Where>
void reserve_holes(int fd, const struct stat& st, bool writable_mapping, bool fd_writable, Reopen&& reopen,
                   const std::string& op, const std::string& name, const char* noun, Where&& where,
                   const std::string& other_fix)
{
    const std::uint64_t missing = unreserved_bytes(st);
    if (missing == 0) {
        return;
    }
    using reopen_type = std::remove_reference_t<Reopen>;
    reserve_missing_holes(
        fd, st, missing, writable_mapping, fd_writable,
        [](const void* r) -> fd_guard { return (*static_cast<reopen_type*>(const_cast<void*>(r)))(); }, &reopen, op,
        name, noun, where(), other_fix);
}

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

std::size_t free_bytes(int fd) noexcept
{
    struct statvfs st {};
    if (sys().fstatvfs(fd, &st) != 0) {
        return SIZE_MAX;
    }
    return static_cast<std::size_t>(st.f_bavail) * static_cast<std::size_t>(st.f_frsize);
}

std::string free_space_fix(const std::string& where, const std::string& docker_hint, const std::string& other_fix)
{
    return "free space (ndshm gc, ndshm rm, ndshm::free_all) or enlarge " + where + docker_hint + other_fix;
}

std::string docker_shm_hint(std::uint64_t bytes)
{
#ifdef _WIN32
    (void)bytes;
    return "";
#else
    return " (in Docker: docker run --shm-size=" + std::to_string(bytes / (1024 * 1024 * 1024) + 1) + "g ...)";
#endif
}

void raise_out_of_space(const std::string& op, const location& l, std::size_t need, std::size_t avail, int err)
{
    const std::string where = shown_dir(l.dir);
    std::string cause = "needs " + bytes_and_count(need) + " but " + where + " has ";
    cause += avail == SIZE_MAX ? std::string("too little") : bytes_and_count(avail);
    cause += " free";
    raise<out_of_space>(op, l.name, cause, free_space_fix(where, docker_shm_hint(need)), errno_code(err));
}

bool memory_backed(int fd) noexcept
{
    struct statfs sf {};
    if (retry_eintr([&] { return sys().fstatfs(fd, &sf); }) != 0) {
        return true;
    }
    constexpr unsigned long tmpfs_magic = 0x01021994, hugetlbfs_magic = 0x958458f6;
    const auto type = static_cast<unsigned long>(sf.f_type);
    return type == tmpfs_magic || type == hugetlbfs_magic;
}

void reserve_missing_holes(int fd, const struct stat& st, std::uint64_t missing, bool writable_mapping,
                           bool fd_writable, fd_guard (*reopen)(const void*), const void* reopen_ctx,
                           const std::string& op, const std::string& name, const char* noun, const std::string& where,
                           const std::string& other_fix)
{
    if (!writable_mapping && !memory_backed(fd)) {
        return;
    }
    const std::string sparse = std::string("the ") + noun + " is sparse: " + std::to_string(missing) + " of its " +
                               std::to_string(st.st_size) +
                               " bytes have no memory reserved (NumPy's open_memmap, and any writer that extends a "
                               "file with ftruncate, leaves holes), and touching a hole when " +
                               where + " is full kills the process with SIGBUS";
    const std::string shm_hint = where == posix_shm_dir ? docker_shm_hint(missing) : std::string();
    const auto no_room = [&](std::size_t avail, int err) {
        raise<out_of_space>(op, name,
                            sparse + "; reserving them needs " + std::to_string(missing) + " bytes but " + where +
                                " has " + (avail == SIZE_MAX ? std::string("too few") : std::to_string(avail)) +
                                " bytes free",
                            free_space_fix(where, shm_hint, other_fix), errno_code(err));
    };
    fd_guard other;
    int wfd = fd;
    if (!fd_writable) {
        other = reopen(reopen_ctx);
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

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
