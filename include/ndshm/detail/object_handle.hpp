/// @file detail/object_handle.hpp
/// `ndshm::shared_object`, the owning handle of a composite object's segment (object.hpp), on its own so
/// that the queue (queue.hpp) can carry objects without compiling cereal.
#ifndef NDSHM_DETAIL_OBJECT_HANDLE_HPP
#define NDSHM_DETAIL_OBJECT_HANDLE_HPP

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "segment_impl.hpp"

namespace ndshm {

class shared_object;

namespace detail {
struct object_access;
}

/// An owning handle to a composite object in shared memory, returned by `ndshm::share`.
///
/// Lifetime is that of shared_ndarray: the creating process owns the name and its last handle (copies
/// share one mapping) unlinks it, unless `persist()` was called; handles copied into a forked child
/// never unlink. Objects loaded from it stay valid after it is gone.
class shared_object {
public:
    /// An empty handle.
    shared_object() = default;

    /// The segment name to pass to other processes (to `ndshm::load<T>`); empty for an empty handle.
    const std::string& name() const noexcept
    {
        static const std::string none;
        return m_map ? m_map->name() : none;
    }
    /// Number of arrays stored in the object's segment.
    std::size_t array_count() const noexcept { return m_map ? m_arrays : 0; }
    /// Size of the whole segment in bytes: header, table of contents, blob, arrays and trailer.
    std::size_t segment_bytes() const noexcept { return m_map ? m_map->size() : 0; }
    bool empty() const noexcept { return !m_map; }
    explicit operator bool() const noexcept { return static_cast<bool>(m_map); }

    /// Hands the name over: no handle of this process unlinks it any more; it stays until
    /// ndshm::unlink(name).
    void persist() noexcept
    {
        if (m_map) {
            m_map->persist();
        }
    }
    /// Drops this handle, which becomes empty (the last owning handle unlinks the name).
    void reset() noexcept { *this = shared_object(); }

    shared_object(const shared_object&) = default;
    shared_object& operator=(const shared_object&) = default;
    /// A moved-from handle is empty in every observable way.
    shared_object(shared_object&& o) noexcept : m_map(std::move(o.m_map)), m_arrays(std::exchange(o.m_arrays, 0)) {}
    shared_object& operator=(shared_object&& o) noexcept
    {
        if (this != &o) {
            m_map = std::move(o.m_map);
            m_arrays = std::exchange(o.m_arrays, 0);
        }
        return *this;
    }
    ~shared_object() = default;

private:
    friend struct detail::object_access;
    shared_object(std::shared_ptr<detail::mapping> m, std::size_t arrays) : m_map(std::move(m)), m_arrays(arrays) {}

    std::shared_ptr<detail::mapping> m_map;
    std::size_t m_arrays = 0;
};

namespace detail {

/// Lets the file functions build and read shared_object handles.
struct object_access {
    static shared_object make(std::shared_ptr<mapping> m, std::size_t arrays)
    {
        return shared_object(std::move(m), arrays);
    }
    static const std::shared_ptr<mapping>& mapping_of(const shared_object& o) noexcept { return o.m_map; }
};

} // namespace detail
} // namespace ndshm

#endif
