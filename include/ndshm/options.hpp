/// @file options.hpp
/// `ndshm::options`: every knob of create and attach, all defaulted.
#ifndef NDSHM_OPTIONS_HPP
#define NDSHM_OPTIONS_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace ndshm {

/// Options of create, from_array and attach. Every member has a safe default.
///
///     ndshm::options o;
///     o.name = "my_array";     // instead of a generated, unguessable name
///     auto a = ndshm::shared_ndarray<double>::create({10}, o);
struct options {
    /// Segment name for create (empty: generate `ndshm_<uid tag>_<16 random chars>`, 80 random bits).
    /// 1 to 255 characters from [A-Za-z0-9._-], not starting with '.'; keep it at most 30 for macOS.
    std::string name;
    /// Permission bits of a created segment, applied exactly (the umask does not widen or narrow them).
    std::uint32_t mode = 0600;
    /// Prefault every page at map time (MAP_POPULATE), so first accesses take no page faults.
    bool populate = false;
    /// Attach with a read-only mapping (PROT_READ). `shared_ndarray<const T>` implies it.
    bool read_only = false;
    /// Directory backend: keep segments as files in this directory (for example a job's tmpfs scratch
    /// space) instead of the POSIX shm namespace. Empty: the NDSHM_DIR environment variable if set,
    /// else POSIX shm (/dev/shm on Linux).
    std::string directory;
    /// Required alignment of the first data byte: a power of two up to 4096. Array data always starts
    /// at byte 4096 of a page-aligned mapping, so every allowed value is met; larger ones are refused.
    std::size_t alignment = 4096;
    /// Attach segments owned by another user (refused by default with permission_denied).
    bool allow_other_users = false;
    /// How long attach waits for a segment whose creator has not published it yet before it throws
    /// format_error. Zero: do not wait.
    std::chrono::milliseconds ready_timeout{1000};
};

} // namespace ndshm

#endif
