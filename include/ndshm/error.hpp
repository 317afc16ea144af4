/// @file error.hpp
/// The ndshm exception family: one root, `ndshm::error`, and a small flat set of subclasses.
#ifndef NDSHM_ERROR_HPP
#define NDSHM_ERROR_HPP

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

namespace ndshm {

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

/// Builds the message `ndshm: <op> '<name>': <cause>; <fix>` and throws E.
template <class E>
[[noreturn]] inline void raise(const std::string& op, const std::string& name, const std::string& cause,
                               const std::string& fix, std::error_code code)
{
    std::string msg = "ndshm: " + op;
    if (!name.empty()) {
        msg += " '" + name + "'";
    }
    msg += ": " + cause;
    if (!fix.empty()) {
        msg += "; " + fix;
    }
    throw E(msg, code);
}

/// The error code for an errno value.
inline std::error_code errno_code(int err) { return std::error_code(err, std::generic_category()); }

/// Throws the ndshm exception that fits errno value `err` for operation `op` on segment `name`.
[[noreturn]] inline void raise_errno(const std::string& op, const std::string& name, int err,
                                     const std::string& what_failed)
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
        raise<out_of_space>(op, name, cause,
                            "free space in /dev/shm (ndshm gc, ndshm rm) or enlarge it (docker run --shm-size=...)",
                            code);
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

} // namespace detail
} // namespace ndshm

#endif
