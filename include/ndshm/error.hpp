/// @file error.hpp
/// The ndshm exception family: one root, `ndshm::error`, and a small flat set of subclasses.
#ifndef NDSHM_ERROR_HPP
#define NDSHM_ERROR_HPP

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <system_error>

#include "detail/config.hpp"

namespace ndshm {

/// ndshm's own error codes, in `ndshm::error_category()`: the causes that no errno value names.
/// Each compares equal to the `std::errc` condition it used to carry (`e.code() == std::errc::
/// invalid_argument` holds for rank_mismatch, for example), and to itself: `e.code() ==
/// ndshm::errc::unfinished`. Failed system calls keep their errno value in `std::generic_category()`.
enum class errc : int {
    corrupt_header = 1, ///< the `.npy` header is malformed or contradicts the segment's size
    truncated,          ///< the bytes end before what the header or table says they hold
    unfinished,         ///< the creator has not published the segment (still writing, or it died)
    unsupported_dtype,  ///< a dtype ndshm does not store (big-endian, structured, object, ...)
    unsupported_format, ///< a format, record version or codec this ndshm does not read
    corrupt_trailer,    ///< ndshm's trailer is damaged or disagrees with the header
    corrupt_object,     ///< a composite object's table of contents is inconsistent
    corrupt_control,    ///< a queue's, channel's or lock's control words are invalid
    wrong_kind,         ///< the segment is of another kind (object, queue, channel) than asked for
    dtype_mismatch,     ///< the segment holds another element type than asked for
    rank_mismatch,      ///< the segment holds an array of another rank than asked for
    invalid_argument,   ///< an argument (name, shape, option, index) is not usable
    serialization,      ///< the non-array part of an object could not be encoded or decoded
    mpi_failure,        ///< an MPI call failed, or another rank of an MPI collective did (ndshm/mpi.hpp)
};
} // namespace ndshm

namespace std {
template <>
struct is_error_code_enum<ndshm::errc> : true_type {
};
} // namespace std

namespace ndshm {

namespace detail {
class error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "ndshm"; }
    NDSHM_DECL std::string message(int ev) const override;
    std::error_condition default_error_condition(int ev) const noexcept override
    {
        switch (static_cast<errc>(ev)) {
        case errc::unfinished:
            return std::errc::resource_unavailable_try_again;
        case errc::wrong_kind:
        case errc::dtype_mismatch:
        case errc::rank_mismatch:
        case errc::invalid_argument:
            return std::errc::invalid_argument;
        case errc::unsupported_dtype:
        case errc::unsupported_format:
            return std::errc::not_supported;
        case errc::mpi_failure:
            return std::errc::io_error;
        default:
            return std::errc::illegal_byte_sequence;
        }
    }
    NDSHM_DECL bool equivalent(int ev, const std::error_condition& cond) const noexcept override;
};
} // namespace detail

/// The category of ndshm::errc codes; its name() is "ndshm".
inline const std::error_category& error_category() noexcept
{
    static const detail::error_category_impl c;
    return c;
}

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }
inline std::error_condition make_error_condition(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

/// Root of every exception ndshm throws. `code()` carries the underlying `std::error_code`
/// (an errno value in `std::generic_category()` where a system call failed).
///
/// Messages name the operation, the segment, the cause and the fix, and start with `ndshm: `.
class error : public std::runtime_error {
public:
    error(const std::string& what, std::error_code code) : std::runtime_error(what), m_code(code) {}
    /// The error code behind this exception.
    const std::error_code& code() const noexcept { return m_code; }

private:
    std::error_code m_code;
};

/// A segment (or file) of that name does not exist.
class not_found : public error {
public:
    using error::error;
};

/// Exclusive create found the name taken.
class already_exists : public error {
public:
    using error::error;
};

/// The segment belongs to another user, or its mode forbids the access.
class permission_denied : public error {
public:
    using error::error;
};

/// Not enough space in /dev/shm (or the directory backend) for the requested segment.
class out_of_space : public error {
public:
    using error::error;
};

/// The segment holds another element type than the one asked for. The message names both.
class dtype_mismatch : public error {
public:
    using error::error;
};

/// The bytes are not a valid ndshm segment or `.npy`: corrupt, truncated, unsupported or unfinished.
class format_error : public error {
public:
    using error::error;
};

/// The non-array part of a composite object could not be encoded or decoded.
class serialization_error : public error {
public:
    using error::error;
};

namespace detail {

/// The message `ndshm: <op> '<name>': <cause>; <fix>` (built out of line: every raise shares it).
[[gnu::cold]] NDSHM_DECL std::string error_message(const std::string& op, const std::string& name,
                                                   const std::string& cause, const std::string& fix);

/// Throws E with the message `ndshm: <op> '<name>': <cause>; <fix>`.
template <class E>
[[noreturn, gnu::noinline, gnu::cold]] inline void raise(const std::string& op, const std::string& name,
                                                         const std::string& cause, const std::string& fix,
                                                         std::error_code code)
{
    throw E(error_message(op, name, cause, fix), code);
}

/// The error code for an errno value.
inline std::error_code errno_code(int err) { return std::error_code(err, std::generic_category()); }

/// Throws the ndshm exception that fits errno value `err` for operation `op` on segment `name`.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_errno(const std::string& op, const std::string& name, int err,
                                                    const std::string& what_failed);

/// "8.0 GiB": a byte count for people (binary units, one decimal), for messages.
NDSHM_DECL std::string human_bytes(std::uint64_t n);

/// "8.0 GiB (8589934592 bytes)": human_bytes with the exact count beside it ("512 bytes" alone below
/// 1 KiB, where the two would say the same).
NDSHM_DECL std::string bytes_and_count(std::uint64_t n);

} // namespace detail
} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

std::string error_category_impl::message(int ev) const
{
    static const char* const text[] = {
        "corrupt .npy header",
        "truncated data",
        "unfinished segment (not published by its creator)",
        "unsupported dtype",
        "unsupported format version",
        "corrupt ndshm trailer",
        "corrupt composite object",
        "corrupt control block",
        "wrong kind of segment",
        "dtype mismatch",
        "rank mismatch",
        "invalid argument",
        "serialisation failed",
        "MPI operation failed",
    };
    if (ev >= 1 && ev <= static_cast<int>(sizeof text / sizeof text[0])) {
        return text[ev - 1];
    }
    return "unknown ndshm error " + std::to_string(ev);
}

bool error_category_impl::equivalent(int ev, const std::error_condition& cond) const noexcept
{
    return cond == default_error_condition(ev) || (cond.category() == *this && cond.value() == ev);
}

std::string error_message(const std::string& op, const std::string& name, const std::string& cause,
                          const std::string& fix)
{
    std::string msg = "ndshm: " + op;
    if (!name.empty()) {
        msg += " '" + name + "'";
    }
    msg += ": " + cause;
    if (!fix.empty()) {
        msg += "; " + fix;
    }
    return msg;
}

void raise_errno(const std::string& op, const std::string& name, int err, const std::string& what_failed)
{
    const std::string cause = what_failed + " failed: " + std::generic_category().message(err);
    const auto code = errno_code(err);
    switch (err) {
    case ENOENT:
        raise<not_found>(op, name, cause,
                         "check the name (ndshm ls lists segments) or whether its owner already removed it", code);
    case EEXIST:
        raise<already_exists>(op, name, cause,
                              "choose another name, let ndshm generate one, or remove the old segment with "
                              "ndshm::unlink / `ndshm rm`",
                              code);
    case EACCES:
    case EPERM:
        raise<permission_denied>(op, name, cause,
                                 "segments are private to the user that created them (mode 0600); run as that "
                                 "user or create the segment with a wider options::mode",
                                 code);
    case ENOSPC:
    case EFBIG:
#ifdef _WIN32
        raise<out_of_space>(op, name, cause,
                            "free space on the drive of the segment directory (ndshm gc, ndshm rm) or set "
                            "NDSHM_SHM_DIR to a directory on a drive with room",
                            code);
#else
        raise<out_of_space>(op, name, cause,
                            "free space in /dev/shm (ndshm gc, ndshm rm) or enlarge it (docker run --shm-size=...)",
                            code);
#endif
    case ENOMEM:
        raise<out_of_space>(op, name, cause, "the system is out of memory or mappings; free some and retry", code);
    case EMFILE:
    case ENFILE:
        raise<error>(op, name, cause, "too many open files; close some or raise the limit (ulimit -n)", code);
    case ENAMETOOLONG:
        raise<error>(op, name, cause, "use a name of at most 30 characters without '/'", code);
    default:
        raise<error>(op, name, cause, "", code);
    }
}

std::string human_bytes(std::uint64_t n)
{
    static const char* const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (n < 1024) {
        return std::to_string(n) + (n == 1 ? " byte" : " bytes");
    }
    double v = static_cast<double>(n);
    int u = 0;
    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

std::string bytes_and_count(std::uint64_t n)
{
    return n < 1024 ? human_bytes(n) : human_bytes(n) + " (" + std::to_string(n) + " bytes)";
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
