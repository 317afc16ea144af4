/// @file detail/mapping.hpp
/// A segment mapped in this process: the mmap'd region (shared by the mappings of one file), and the
/// mapping that handles share, which owns the name while this process does and publishes the segment.
#ifndef NDSHM_DETAIL_MAPPING_HPP
#define NDSHM_DETAIL_MAPPING_HPP

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "../error.hpp"
#include "config.hpp"
#include "npy.hpp"
#include "segment_location.hpp"
#include "session.hpp"
#include "sys.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// mmap through sys() at an address of the system's choice, retrying an interrupted call (a failed mmap
/// had no effect): the address, or MAP_FAILED with errno set.
NDSHM_DECL void* map_memory(std::size_t size, int prot, int flags, int fd, off_t offset) noexcept;

/// Maps `size` bytes of `fd`; throws on failure.
NDSHM_DECL unsigned char* map_fd(int fd, std::size_t size, bool writable, bool populate, const std::string& op,
                                 const std::string& name);

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
    NDSHM_DECL mapping(location loc, unsigned char* base, std::size_t size, bool writable);
    mapping(location loc, std::shared_ptr<const region> r, bool writable) noexcept
        : m_loc(std::move(loc)), m_region(std::move(r)), m_base(m_region->base()), m_size(m_region->size()),
          m_writable(writable)
    {
    }
    mapping(const mapping&) = delete;
    mapping& operator=(const mapping&) = delete;
    NDSHM_DECL ~mapping();

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
    NDSHM_DECL void own();

    /// Gives up ownership: the name outlives this process until someone unlinks it.
    NDSHM_DECL void persist() noexcept;

    /// True if this process owns the name: the last handle of this mapping would unlink it.
    bool owned() const { return m_owner && session().contains(m_loc, m_id); }

    /// Gives up ownership without marking the segment persisted, because another process takes it
    /// over (array_queue::push, a pool worker returning an array). No handle here unlinks it any more.
    NDSHM_DECL void disown() noexcept;

    /// Makes the segment visible to attach: stores the magic, its first byte last with release order.
    NDSHM_DECL void publish() noexcept;

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

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void* map_memory(std::size_t size, int prot, int flags, int fd, off_t offset) noexcept
{
    void* p = MAP_FAILED;
    do {
        p = sys().mmap(nullptr, size, prot, flags, fd, offset);
    } while (p == MAP_FAILED && errno == EINTR);
    return p;
}

unsigned char* map_fd(int fd, std::size_t size, bool writable, bool populate, const std::string& op,
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
    void* p = map_memory(size, writable ? PROT_READ | PROT_WRITE : PROT_READ, flags, fd, 0);
    if (p == MAP_FAILED) {
        raise_errno(op, name, errno, "mmap");
    }
    return static_cast<unsigned char*>(p);
}

mapping::mapping(location loc, unsigned char* base, std::size_t size, bool writable)
    : mapping(std::move(loc), std::make_shared<region>(base, size), writable)
{
}

mapping::~mapping()
{
    // remove() fails in a forked child (other pid) and after persist(), free_session() or unlink().
    // The name is checked while this mapping still holds the file: as long as it does, no other
    // file can have its inode, so equal identities mean the same file.
    if (m_owner) {
        unlink_if_owned(m_loc, m_id);
    }
}

void mapping::own()
{
    session().add(m_loc, m_id);
    m_owner = true;
}

void mapping::persist() noexcept
{
    if (m_trailer != nullptr && m_writable) {
        fetch_or(m_trailer->flags, flag_persisted);
    }
    if (m_owner) {
        (void)session().remove(m_loc, m_id);
        m_owner = false;
    }
}

void mapping::disown() noexcept
{
    if (m_owner) {
        (void)session().remove(m_loc, m_id);
        m_owner = false;
    }
}

void mapping::publish() noexcept
{
    if (m_trailer != nullptr) {
        store_release(m_trailer->state, state_ready);
    }
    std::memcpy(m_base + 1, npy_magic + 1, sizeof npy_magic - 1);
    __atomic_store_n(m_base, static_cast<unsigned char>(npy_magic[0]), __ATOMIC_RELEASE);
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
