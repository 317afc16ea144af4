/// @file list.hpp
/// `ndshm::shared_list`: a named list of shared arrays that every process of the user can read and
/// change, atomically, safe under concurrent writers and kill -9.
///
///     auto l = ndshm::shared_list::create();                  // this process owns it
///     l.append(xt::xarray<double>{1, 2, 3});                  // a copy in a segment of its own
///     auto a = ndshm::shared_list::attach(l.name()).at<double>(0);  // any process, zero copy
#ifndef NDSHM_LIST_HPP
#define NDSHM_LIST_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "any_ndarray.hpp"
#include "detail/collection_format.hpp"
#include "detail/collection_handle.hpp"
#include "detail/collection_impl.hpp"
#include "detail/config.hpp"
#include "error.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

/// A named list of shared arrays of any dtype, in shared memory.
///
/// Each entry is an array segment of its own (a valid `.npy`, any dtype, any shape); the list's own
/// segment holds a table of them, in order. `at<T>(i)` attaches an entry without copying (its dtype
/// checked); `append`, `extend`, `insert` and `assign` copy arrays or xtensor expressions into new
/// entries, and `adopt` appends an array without a copy.
///
/// Changes are atomic and visible to every process: a process sees the list either as it was or as
/// it is after a change (an `extend` of many arrays included), never half made. Any number of
/// processes read and change one list at once; its lock is ndshm's own (detail/sync.hpp), and a
/// process killed at any point (kill -9 in the middle of a change) leaves a list that the next user
/// repairs: the change happened or it did not. Positions move when other processes insert or pop: a
/// position read in one call may name another entry in the next.
///
/// Lifetime, capacity and empty handles as for shared_dict (dict.hpp): the creating process owns the
/// list and its last handle unlinks it with every entry; capacity fixed at creation (default 1024, at
/// most 2^20 entries), each unit of it costing 264 bytes of table.
class shared_list : public detail::collection_handle<shared_list> {
public:
    /// What messages call it.
    static constexpr const char* noun = "list";

    /// What iteration yields: an entry, dtype-erased.
    using value_type = any_ndarray;
    /// Iterates over a snapshot taken by begin(), in order.
    using iterator = detail::snapshot_iterator<value_type>;
    using const_iterator = iterator;

    /// The capacity of create() when none is given.
    static constexpr std::size_t default_capacity = 1024;

    /// An empty handle (no list).
    shared_list() = default;

    /// Creates an empty list for up to `capacity` entries, exclusively, mode 0600 (`opt.mode`, which
    /// its entries get too), under a generated unguessable name or `opt.name`; this process owns it.
    /// `opt.directory` (or NDSHM_DIR) selects the backend for the list and its entries.
    /// @throws already_exists, permission_denied, out_of_space, error (capacity 0 or above 2^20,
    /// options::read_only)
    static shared_list create(std::size_t capacity = default_capacity, const options& opt = {})
    {
        return shared_list(detail::create_collection(detail::kind_list, capacity, opt, "create list"));
    }

    /// Opens the list `name` that another process (or this one) created. The handle does not own it.
    /// `opt.populate` prefaults the entries it attaches.
    /// @throws not_found, permission_denied, format_error (not a list, or corrupt), error
    static shared_list attach(const std::string& name, const options& opt = {})
    {
        return shared_list(detail::open_collection(detail::kind_list, name, opt, "open list"));
    }

    /// The entry at position `i`, attached without copying; `shared_ndarray<const T>` maps it read-only.
    /// @throws std::out_of_range if `i` is not below size(), dtype_mismatch naming both dtypes
    template <class T>
    shared_ndarray<T> at(std::size_t i) const
    {
        auto& c = impl("at");
        auto a = c.fetch("at", position_locator{c, i},
                         [&](const detail::entry_ref& e) { return c.template attach_typed<T>(e, "at"); });
        if (!a) {
            raise_range("at", i);
        }
        return std::move(*a);
    }

    /// The entry at position `i`, dtype-erased (see any_ndarray: dtype(), shape(), as<T>(), visit()).
    /// @throws std::out_of_range if `i` is not below size()
    NDSHM_DECL any_ndarray at(std::size_t i) const;

    /// The entry at position `i`, dtype-erased: the same as at(i).
    any_ndarray operator[](std::size_t i) const { return at(i); }

    /// Appends a copy of `value` (an xtensor expression, a shared_ndarray or shared_tensor, or an
    /// any_ndarray).
    /// @throws out_of_space (the list is full, or /dev/shm is)
    template <class V>
    void append(const V& value)
    {
        auto& c = impl("append");
        std::vector<detail::new_entry> added{c.make_entry({}, value, "append")};
        c.change("append", added, [&](detail::collection_edit& edit) { edit.order.push_back(detail::added_mark); });
    }

    /// Appends the array `a` without copying it: `a` must be a whole array segment that this process
    /// created (and owns), in the list's backend. On return `a` is empty and the array belongs to the
    /// list (its copies in this process stay valid mappings).
    /// @throws error if `a` cannot be handed over (then it is left as it was), out_of_space
    template <class T>
    void adopt(shared_ndarray<T>&& a)
    {
        static_assert(!std::is_const_v<T>, "adopt a writable shared_ndarray<T>");
        auto& c = impl("adopt");
        std::vector<detail::new_entry> added{c.adopted_entry({}, a, "adopt")};
        c.change("adopt", added, [&](detail::collection_edit& edit) { edit.order.push_back(detail::added_mark); });
        a.reset();
    }

    /// Appends a copy of every value of `values` (a range: a std::vector of xt::xarray, of
    /// shared_ndarray, ...), in one atomic change: every process sees all of them or none.
    /// @throws as append(); nothing changes if it throws
    template <class Range>
    void extend(const Range& values)
    {
        auto& c = impl("extend");
        std::vector<detail::new_entry> added;
        for (const auto& v : values) {
            added.push_back(c.make_entry({}, v, "extend"));
        }
        c.change("extend", added, [&](detail::collection_edit& edit) {
            for (std::size_t k = 0; k < added.size(); ++k) {
                edit.order.push_back(detail::added_mark | static_cast<std::uint32_t>(k));
            }
        });
    }

    /// Inserts a copy of `value` before position `i` (at the end if `i` is size()).
    /// @throws std::out_of_range if `i` is above size(), and as append()
    template <class V>
    void insert(std::size_t i, const V& value)
    {
        auto& c = impl("insert");
        std::vector<detail::new_entry> added{c.make_entry({}, value, "insert")};
        c.change("insert", added, [&](detail::collection_edit& edit) {
            if (i > edit.order.size()) {
                raise_range("insert", i, edit.order.size());
            }
            edit.order.insert(edit.order.begin() + static_cast<std::ptrdiff_t>(i), detail::added_mark);
        });
    }

    /// Replaces the entry at position `i` with a copy of `value`, in one atomic change; the old
    /// entry's segment is unlinked (handles of it stay valid).
    /// @throws std::out_of_range if `i` is not below size(), and as append()
    template <class V>
    void assign(std::size_t i, const V& value)
    {
        auto& c = impl("assign");
        std::vector<detail::new_entry> added{c.make_entry({}, value, "assign")};
        c.change("assign", added, [&](detail::collection_edit& edit) {
            if (i >= edit.order.size()) {
                raise_range("assign", i, edit.order.size());
            }
            edit.removed.push_back(edit.order[i]);
            edit.order[i] = detail::added_mark;
        });
    }

    /// Removes the last entry and returns its array, which this process then owns (its last handle
    /// unlinks it, as for an array it created).
    /// @throws std::out_of_range if the list is empty; dtype_mismatch (the entry stays)
    template <class T>
    shared_ndarray<T> pop()
    {
        return pop_at<T>(std::nullopt);
    }

    /// Removes the entry at position `i` and returns its array, which this process then owns.
    /// @throws std::out_of_range if `i` is not below size(); dtype_mismatch (the entry stays)
    template <class T>
    shared_ndarray<T> pop(std::size_t i)
    {
        return pop_at<T>(i);
    }

    /// Removes the entry at position `i` and unlinks its segment (handles of it stay valid).
    /// @throws std::out_of_range if `i` is not below size()
    NDSHM_DECL void erase(std::size_t i);

    /// Removes every entry and unlinks their segments, in one atomic change.
    NDSHM_DECL void clear();

    /// Every entry, dtype-erased, in order (a snapshot).
    NDSHM_DECL std::vector<any_ndarray> values() const;

    /// Every entry as a shared_ndarray<T>, in order (a snapshot).
    /// @throws dtype_mismatch (naming the position) if an entry holds another dtype
    template <class T>
    std::vector<shared_ndarray<T>> values() const
    {
        auto& c = impl("values");
        std::vector<shared_ndarray<T>> out;
        for (auto& p : c.fetch_all(
                 "values", [&](const detail::entry_ref& e) { return c.template attach_typed<T>(e, "values"); })) {
            out.push_back(std::move(p.second));
        }
        return out;
    }

    /// A copy of every entry in this process's own memory, in order (a snapshot).
    /// @throws dtype_mismatch (naming the position) if an entry holds another dtype
    template <class T>
    std::vector<xt::xarray<T>> copy() const
    {
        std::vector<xt::xarray<T>> out;
        for (auto& a : values<const T>()) {
            out.push_back(a.copy());
        }
        return out;
    }

    /// Iteration over a snapshot of the entries taken now, in order (any_ndarray).
    NDSHM_DECL iterator begin() const;
    iterator end() const { return iterator(); }

private:
    explicit shared_list(std::shared_ptr<detail::collection_impl> impl) : collection_handle(std::move(impl)) {}

    /// Finds position `i` under the lock (for collection_impl::fetch).
    struct position_locator {
        detail::collection_impl& c;
        std::size_t i;
        detail::entry_locator operator()(detail::collection_impl::guard& g) const
        {
            const auto r = c.record_at(i, g.op());
            if (!r) {
                return std::nullopt;
            }
            return std::make_pair(*r, i);
        }
    };

    [[noreturn]] NDSHM_DECL void raise_range(const char* op, std::size_t i,
                                             std::optional<std::size_t> n = std::nullopt) const;

    /// Throws not_found: pop found the segment of the entry gone, and dropped the entry.
    [[noreturn]] NDSHM_DECL void raise_popped_gone() const;

    template <class T>
    shared_ndarray<T> pop_at(std::optional<std::size_t> where)
    {
        static_assert(!std::is_const_v<T>, "pop a writable shared_ndarray<T>");
        auto& c = impl("pop");
        shared_ndarray<T> out;
        bool vanished = false;
        std::vector<detail::new_entry> none;
        c.change("pop", none, [&](detail::collection_edit& edit) {
            if (edit.order.empty() || (where && *where >= edit.order.size())) {
                raise_range("pop", where ? *where : 0, edit.order.size());
            }
            const std::size_t i = where ? *where : edit.order.size() - 1;
            out = c.template take_entry<T>(edit, edit.order[i], i, "pop");
            vanished = !out;
        });
        if (vanished) {
            raise_popped_gone();
        }
        return out;
    }
};

} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm {

any_ndarray shared_list::at(std::size_t i) const
{
    auto& c = impl("at");
    auto a = c.fetch("at", position_locator{c, i},
                     [&](const detail::entry_ref& e) { return c.attach_any_entry(e, attach_any, "at"); });
    if (!a) {
        raise_range("at", i);
    }
    return std::move(*a);
}

void shared_list::erase(std::size_t i)
{
    auto& c = impl("erase");
    std::vector<detail::new_entry> none;
    c.change("erase", none, [&](detail::collection_edit& edit) {
        if (i >= edit.order.size()) {
            raise_range("erase", i, edit.order.size());
        }
        edit.removed.push_back(edit.order[i]);
        edit.order.erase(edit.order.begin() + static_cast<std::ptrdiff_t>(i));
    });
}

void shared_list::clear()
{
    auto& c = impl("clear");
    std::vector<detail::new_entry> none;
    c.change("clear", none, [&](detail::collection_edit& edit) {
        edit.removed = edit.order;
        edit.order.clear();
    });
}

std::vector<any_ndarray> shared_list::values() const
{
    auto& c = impl("values");
    std::vector<any_ndarray> out;
    for (auto& p : c.fetch_all(
             "values", [&](const detail::entry_ref& e) { return c.attach_any_entry(e, attach_any, "values"); })) {
        out.push_back(std::move(p.second));
    }
    return out;
}

void shared_list::raise_range(const char* op, std::size_t i, std::optional<std::size_t> n) const
{
    const std::size_t size = n ? *n : this->size();
    throw std::out_of_range(detail::error_message(op, name(),
                                                  "position " + std::to_string(i) + " is out of range for a list of " +
                                                      std::to_string(size) + " entries",
                                                  "check size() first; other processes may have removed entries"));
}

shared_list::iterator shared_list::begin() const
{
    return iterator(std::make_shared<const std::vector<value_type>>(values()));
}

void shared_list::raise_popped_gone() const
{
    detail::raise<not_found>("pop", name(),
                             "the segment of the entry was gone (something outside the list removed it); the "
                             "entry was dropped",
                             "", detail::errno_code(ENOENT));
}

} // namespace ndshm
#endif // NDSHM_DEFINITIONS

#endif
