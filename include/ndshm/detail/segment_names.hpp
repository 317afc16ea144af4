/// @file detail/segment_names.hpp
/// Segment names: generated ones (the user's prefix and 80 random bits from the kernel's CSPRNG), the
/// check of a chosen one and of one read from shared memory, and listing the calling user's files in a namespace. All
/// system calls go through sys() (detail/sys.hpp).
#ifndef NDSHM_DETAIL_SEGMENT_NAMES_HPP
#define NDSHM_DETAIL_SEGMENT_NAMES_HPP

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../error.hpp"
#include "config.hpp"
#include "directory.hpp"
#include "segment_location.hpp"
#include "sys.hpp"

namespace ndshm::detail {

/// The prefix of every ndshm segment name: what listing, gc and free_all look for.
inline constexpr const char* name_prefix = "ndshm_";

/// The per-user part of generated names: `ndshm_<uid in base 36>_`.
NDSHM_DECL std::string user_prefix(uid_t uid);

/// Bits of randomness in a generated name.
inline constexpr int name_random_bits = 80;

/// Fills `n` bytes at `out` from the kernel's CSPRNG: getrandom, or /dev/urandom where getrandom is
/// missing (ENOSYS: a kernel before 3.17), refused (EPERM: a seccomp filter) or reports EAGAIN. Throws
/// if neither can be read: a name must never be predictable.
NDSHM_DECL void random_bytes(unsigned char* out, std::size_t n, const std::string& op);

/// A fresh name: the user prefix and 16 base-32 characters (80 bits) from the kernel's CSPRNG.
/// At most 6 + 7 + 1 + 16 = 30 characters.
NDSHM_DECL std::string generate_name(const std::string& op = "create");

/// The segment name in `name`: a POSIX-style "/img", as shm_open takes it, names the segment "img".
NDSHM_DECL std::string segment_name(const std::string& name);

/// True for a character that segment names may hold: [A-Za-z0-9._-].
constexpr bool segment_name_char(char c) noexcept
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

/// True if the `room` bytes at `s` hold a usable segment name: 1 to room-1 characters of
/// [A-Za-z0-9._-], NUL-terminated, not starting with '.'. For names that a queue's or a container's
/// table holds in shared memory: untrusted bytes.
NDSHM_DECL bool valid_segment_name(const char* s, std::size_t room, std::string& name);

/// Throws unless `name` is a usable segment name.
NDSHM_DECL void check_name(const std::string& op, const std::string& name);

/// Collects the names in `dir` that start with `prefix` (any name for "") and are regular files of the calling
/// user. Returns false if `dir` is /dev/shm and does not exist (no POSIX shm listing on this system).
/// @throws the ndshm error that fits the errno if the directory cannot be listed
NDSHM_DECL bool list_user_files_with_prefix(const std::string& op, const std::string& dir, const char* prefix,
                                            std::vector<std::string>& names);

/// The names of the calling user's regular files in `dir` that start with `ndshm_`.
inline bool list_user_segments(const std::string& op, const std::string& dir, std::vector<std::string>& names)
{
    return list_user_files_with_prefix(op, dir, name_prefix, names);
}

/// The names of the calling user's regular files in `dir`, whatever their names ("." and ".." aside).
/// Returns false if `dir` is /dev/shm and does not exist.
inline bool list_user_files(const std::string& op, const std::string& dir, std::vector<std::string>& names)
{
    return list_user_files_with_prefix(op, dir, "", names);
}

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

std::string user_prefix(uid_t uid)
{
    std::string tag;
    std::uint64_t v = uid;
    do {
        tag.insert(tag.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36]);
        v /= 36;
    } while (v != 0);
    return name_prefix + tag + "_";
}

void random_bytes(unsigned char* out, std::size_t n, const std::string& op)
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

std::string generate_name(const std::string& op)
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

std::string segment_name(const std::string& name) { return name.size() > 1 && name[0] == '/' ? name.substr(1) : name; }

bool valid_segment_name(const char* s, std::size_t room, std::string& name)
{
    const void* nul = std::memchr(s, '\0', room);
    if (nul == nullptr || nul == s || s[0] == '.') {
        return false;
    }
    const auto n = static_cast<std::size_t>(static_cast<const char*>(nul) - s);
    for (std::size_t i = 0; i < n; ++i) {
        if (!segment_name_char(s[i])) {
            return false;
        }
    }
    name.assign(s, n);
    return true;
}

void check_name(const std::string& op, const std::string& name)
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
        if (!segment_name_char(c)) {
            bad("it contains a character outside [A-Za-z0-9._-]");
        }
    }
}

bool list_user_files_with_prefix(const std::string& op, const std::string& dir, const char* prefix,
                                 std::vector<std::string>& names)
{
    dir_guard d(dir.c_str());
    if (d.get() == nullptr) {
        const int err = errno;
        if (err == ENOENT && dir == posix_shm_dir) {
            return false;
        }
        raise_errno(op, dir, err, "opendir");
    }
    const uid_t me = current_uid();
    for (;;) {
        int err = 0;
        const dirent* e = d.next(err);
        if (e == nullptr) {
            if (err == 0) {
                return true;
            }
            raise_errno(op, dir, err, "readdir");
        }
        if (std::strncmp(e->d_name, prefix, std::strlen(prefix)) != 0 || std::strcmp(e->d_name, ".") == 0 ||
            std::strcmp(e->d_name, "..") == 0) {
            continue;
        }
        struct stat st {};
        if (retry_eintr([&] { return sys().fstatat(dir_fd(d.get()), e->d_name, &st, AT_SYMLINK_NOFOLLOW); }) != 0) {
            if (errno == ENOENT) {
                continue; // removed since readdir
            }
            raise_errno(op, dir + "/" + e->d_name, errno, "fstatat");
        }
        if (S_ISREG(st.st_mode) && st.st_uid == me) {
            names.emplace_back(e->d_name);
        }
    }
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
