/// @file detail/collection_handle.hpp
/// What the handles `shared_dict` (dict.hpp) and `shared_list` (list.hpp) share: the handle base over a
/// collection_impl (name, capacity, size, persist, remove, reset, the empty-handle error), and the
/// iterator over a snapshot of a container's entries.
#ifndef NDSHM_DETAIL_COLLECTION_HANDLE_HPP
#define NDSHM_DETAIL_COLLECTION_HANDLE_HPP

#include <chrono>
#include <cstddef>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "collection_impl.hpp"
#include "config.hpp"

namespace ndshm::detail {

/// Throws the error of an empty shared_dict or shared_list handle (`noun` "dict" or "list") used for `op`.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_empty_collection(const char* op, const char* noun);

/// An iterator over a snapshot of a container's entries (shared by every copy of the iterator).
template <class V>
class snapshot_iterator {
public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = V;
    using difference_type = std::ptrdiff_t;
    using pointer = const V*;
    using reference = const V&;

    snapshot_iterator() = default;
    explicit snapshot_iterator(std::shared_ptr<const std::vector<V>> items) : m_items(std::move(items)) {}

    reference operator*() const { return (*m_items)[m_pos]; }
    pointer operator->() const { return &(*m_items)[m_pos]; }
    snapshot_iterator& operator++()
    {
        ++m_pos;
        return *this;
    }
    snapshot_iterator operator++(int)
    {
        snapshot_iterator old = *this;
        ++m_pos;
        return old;
    }
    friend bool operator==(const snapshot_iterator& a, const snapshot_iterator& b) noexcept
    {
        const bool a_end = a.at_end(), b_end = b.at_end();
        return a_end || b_end ? a_end == b_end : a.m_items == b.m_items && a.m_pos == b.m_pos;
    }
    friend bool operator!=(const snapshot_iterator& a, const snapshot_iterator& b) noexcept { return !(a == b); }

private:
    bool at_end() const noexcept { return !m_items || m_pos >= m_items->size(); }
    std::shared_ptr<const std::vector<V>> m_items;
    std::size_t m_pos = 0;
};

/// What shared_dict and shared_list share: a handle on a collection_impl, empty when default-made,
/// moved from or reset. `Derived::noun` ("dict", "list") names the container in messages.
template <class Derived>
class collection_handle {
public:
    /// The container's name, to pass to other processes; empty for an empty handle.
    const std::string& name() const noexcept
    {
        static const std::string none;
        return m_impl ? m_impl->name() : none;
    }
    /// The most entries it holds.
    std::size_t capacity() const noexcept { return m_impl ? m_impl->capacity() : 0; }
    /// Entries now (a snapshot: other processes may change it at once).
    std::size_t size() const noexcept { return m_impl ? m_impl->size() : 0; }
    /// True if it holds no entries (or the handle holds no container).
    bool empty() const noexcept { return size() == 0; }
    /// True for a handle that holds a container.
    explicit operator bool() const noexcept { return static_cast<bool>(m_impl); }

    /// Hands the container over: neither it nor its entries are unlinked by any handle any more, and
    /// `ndshm gc` keeps them; remove() (on a handle from attach()) removes them later. Call it on the
    /// owner's handle.
    void persist() { impl("persist").persist("persist"); }

    /// Removes the container now, for every process: unlinks every entry and its name. Handles in other
    /// processes see it removed (every call but reset() throws); arrays they attached stay valid.
    void remove()
    {
        impl("remove").remove_now(std::string("remove ") + Derived::noun, std::chrono::steady_clock::time_point::max());
    }

    /// Drops this handle, which becomes empty (the owner's last handle removes the container).
    void reset() noexcept { m_impl.reset(); }

protected:
    collection_handle() = default;
    explicit collection_handle(std::shared_ptr<collection_impl> impl) : m_impl(std::move(impl)) {}
    collection_handle(const collection_handle&) = default;
    collection_handle& operator=(const collection_handle&) = default;
    /// A moved-from handle is empty.
    collection_handle(collection_handle&& o) noexcept : m_impl(std::move(o.m_impl)) {}
    collection_handle& operator=(collection_handle&& o) noexcept
    {
        m_impl = std::move(o.m_impl);
        o.m_impl.reset();
        return *this;
    }
    ~collection_handle() = default;

    /// The container, or an error naming `op` for an empty handle.
    collection_impl& impl(const char* op) const
    {
        if (!m_impl) {
            raise_empty_collection(op, Derived::noun);
        }
        return *m_impl;
    }

    std::shared_ptr<collection_impl> m_impl;
};
} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void raise_empty_collection(const char* op, const char* noun)
{
    const std::string type = std::string("shared_") + noun;
    raise<error>(op, "", "the " + type + " handle is empty",
                 std::string("create a ") + noun + " with " + type + "::create or attach one with " + type + "::attach",
                 make_error_code(errc::invalid_argument));
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
