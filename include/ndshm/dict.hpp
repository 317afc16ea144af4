/// @file dict.hpp
/// `ndshm::shared_dict`: a named dictionary of shared arrays that every process of the user can read
/// and change, atomically, safe under concurrent writers and kill -9.
///
///     auto d = ndshm::shared_dict::create();                  // this process owns it
///     d.assign("weights", xt::xarray<float>{{1, 2}, {3, 4}});  // a copy in a segment of its own
///     auto w = ndshm::shared_dict::attach(d.name()).get<float>("weights");  // any process, zero copy
#ifndef NDSHM_DICT_HPP
#define NDSHM_DICT_HPP

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
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

/// A named dictionary from string keys to shared arrays of any dtype, in shared memory.
///
/// Each entry is an array segment of its own (a valid `.npy`, any dtype, any shape); the dict's own
/// segment holds a table of them. `get<T>(key)` attaches an entry without copying (its dtype checked);
/// `assign`, `insert` and `update` copy arrays or xtensor expressions into new entries, and `adopt`
/// hands over an array without a copy.
///
/// Changes are atomic and visible to every process: a process sees an entry either as it was or as
/// it is after a change, never half made. Assigning a key replaces its entry with a new segment;
/// handles of the old one stay valid (they keep their mapping) but are no longer in the dict.
/// Writing into an entry's array through a handle is not a change of the dict and is not
/// synchronised by it. Any number of processes read and change one dict at once; its lock is ndshm's
/// own (detail/sync.hpp), and a process killed at any point (kill -9 in the middle of a change) leaves
/// a dict that the next user repairs: the change happened or it did not.
///
/// Lifetime: the process that creates the dict owns it. Its last handle (or remove()) unlinks the
/// dict and every entry in it; persist() hands the whole dict over (remove() on any handle removes it
/// later). Handles in other processes, forked children included, never remove it unless they call
/// remove(). `ndshm gc` removes the dict and its entries once its creator is dead (unless persisted).
///
/// Capacity: fixed when the dict is made (default 1024, at most 2^20 entries); a change that would
/// exceed it throws out_of_space naming the capacity. Each unit of capacity costs 784 bytes of table.
/// Keys are up to 255 bytes (any bytes).
///
/// A default-constructed, moved-from or reset handle holds no dict: `name()` is empty, `size()` 0,
/// and every other call throws ndshm::error.
class shared_dict : public detail::collection_handle<shared_dict> {
public:
    /// What messages call it.
    static constexpr const char* noun = "dict";

    /// What iteration yields: a key and its entry, dtype-erased.
    using value_type = std::pair<std::string, any_ndarray>;
    /// Iterates over a snapshot taken by begin(), in insertion order.
    using iterator = detail::snapshot_iterator<value_type>;
    using const_iterator = iterator;

    /// The capacity of create() when none is given.
    static constexpr std::size_t default_capacity = 1024;

    /// An empty handle (no dict).
    shared_dict() = default;

    /// Creates an empty dict for up to `capacity` entries, exclusively, mode 0600 (`opt.mode`, which
    /// its entries get too), under a generated unguessable name or `opt.name`; this process owns it.
    /// `opt.directory` (or NDSHM_DIR) selects the backend for the dict and its entries.
    /// @throws already_exists, permission_denied, out_of_space, error (capacity 0 or above 2^20,
    /// options::read_only)
    static shared_dict create(std::size_t capacity = default_capacity, const options& opt = {})
    {
        return shared_dict(detail::create_collection(detail::kind_dict, capacity, opt, "create dict"));
    }

    /// Opens the dict `name` that another process (or this one) created. The handle does not own it.
    /// `opt.populate` prefaults the entries it attaches.
    /// @throws not_found, permission_denied, format_error (not a dict, or corrupt), error
    static shared_dict attach(const std::string& name, const options& opt = {})
    {
        return shared_dict(detail::open_collection(detail::kind_dict, name, opt, "open dict"));
    }

    /// True if `key` is in the dict now.
    NDSHM_DECL bool contains(const std::string& key) const;

    /// The entry `key`, attached without copying; `shared_ndarray<const T>` maps it read-only.
    /// @throws not_found if there is no such key, dtype_mismatch naming both dtypes
    template <class T>
    shared_ndarray<T> get(const std::string& key) const
    {
        auto a = find<T>(key);
        if (!a) {
            raise_no_key("get", key);
        }
        return a;
    }

    /// The entry `key`, dtype-erased (see any_ndarray: dtype(), shape(), as<T>(), visit()).
    /// @throws not_found if there is no such key
    NDSHM_DECL any_ndarray get(const std::string& key) const;

    /// The entry `key`, dtype-erased: the same as get(key).
    any_ndarray operator[](const std::string& key) const { return get(key); }

    /// The entry `key`, or an empty handle if there is none.
    /// @throws dtype_mismatch naming both dtypes
    template <class T>
    shared_ndarray<T> find(const std::string& key) const
    {
        auto& c = impl("get");
        auto a = c.fetch("get", key_locator{c, key},
                         [&](const detail::entry_ref& e) { return c.template attach_typed<T>(e, "get"); });
        return a ? std::move(*a) : shared_ndarray<T>();
    }

    /// Sets `key` to a copy of `value` (an xtensor expression, a shared_ndarray or shared_tensor, or an
    /// any_ndarray), replacing the entry it had, if any, in one atomic change.
    /// @throws out_of_space (the dict is full, or /dev/shm is), error (a key longer than 255 bytes)
    template <class V>
    void assign(const std::string& key, const V& value)
    {
        auto& c = impl("assign");
        check_key("assign", key);
        std::vector<detail::new_entry> added{c.make_entry(key, value, "assign")};
        put(c, "assign", added, true);
    }

    /// Adds `key` with a copy of `value` if the key is not in the dict; returns false (and changes
    /// nothing) if it is.
    /// @throws as assign()
    template <class V>
    bool insert(const std::string& key, const V& value)
    {
        auto& c = impl("insert");
        check_key("insert", key);
        if (contains(key)) {
            return false;
        }
        std::vector<detail::new_entry> added{c.make_entry(key, value, "insert")};
        return put(c, "insert", added, false);
    }

    /// Sets `key` to the array `a` without copying it, as assign() would a copy: `a` must be a whole
    /// array segment that this process created (and owns), in the dict's backend. On return `a` is
    /// empty and the array belongs to the dict (its copies in this process stay valid mappings).
    /// @throws error if `a` cannot be handed over (then it is left as it was), and as assign()
    template <class T>
    void adopt(const std::string& key, shared_ndarray<T>&& a)
    {
        static_assert(!std::is_const_v<T>, "adopt a writable shared_ndarray<T>");
        auto& c = impl("adopt");
        check_key("adopt", key);
        std::vector<detail::new_entry> added{c.adopted_entry(key, a, "adopt")};
        put(c, "adopt", added, true);
        a.reset();
    }

    /// Sets every key of `entries` (a range of pairs of a key and a value, such as a std::map of
    /// xt::xarray) to a copy of its value, in one atomic change: every process sees all of them or
    /// none. A key given twice gets its last value.
    /// @throws as assign(); nothing changes if it throws
    template <class Range>
    void update(const Range& entries)
    {
        auto& c = impl("update");
        std::vector<detail::new_entry> added;
        for (const auto& kv : entries) {
            check_key("update", kv.first);
            added.push_back(c.make_entry(std::string(kv.first), kv.second, "update"));
        }
        update_with(c, added);
    }

    /// Sets every key of `other` (another dict, or this one) to a copy of its entry, in one atomic
    /// change.
    NDSHM_DECL void update(const shared_dict& other);

    /// Removes `key` and unlinks its entry's segment (handles of it stay valid); returns false if the
    /// key was not there.
    NDSHM_DECL bool erase(const std::string& key);

    /// Removes `key` and returns its array, which this process then owns (its last handle unlinks it,
    /// as for an array it created).
    /// @throws not_found if there is no such key; dtype_mismatch (the entry stays)
    template <class T>
    shared_ndarray<T> pop(const std::string& key)
    {
        static_assert(!std::is_const_v<T>, "pop a writable shared_ndarray<T>");
        auto& c = impl("pop");
        shared_ndarray<T> out;
        std::vector<detail::new_entry> none;
        c.change("pop", none, [&](detail::collection_edit& edit) {
            const auto r = c.find_key(key, "pop");
            if (!r) {
                raise_no_key("pop", key);
            }
            out = c.template take_entry<T>(edit, *r, c.position_in(edit.order, *r, "pop"), "pop");
        });
        if (!out) {
            raise_popped_gone(key);
        }
        return out;
    }

    /// Removes every entry and unlinks their segments, in one atomic change.
    NDSHM_DECL void clear();

    /// The keys, in insertion order (a snapshot).
    NDSHM_DECL std::vector<std::string> keys() const;

    /// Every entry, dtype-erased, in insertion order (a snapshot).
    NDSHM_DECL std::vector<any_ndarray> values() const;

    /// Every entry as a shared_ndarray<T>, in insertion order (a snapshot).
    /// @throws dtype_mismatch (naming the key) if an entry holds another dtype
    template <class T>
    std::vector<shared_ndarray<T>> values() const
    {
        std::vector<shared_ndarray<T>> out;
        for (auto& kv : items<T>()) {
            out.push_back(std::move(kv.second));
        }
        return out;
    }

    /// Every key and its entry, dtype-erased, in insertion order (a snapshot).
    NDSHM_DECL std::vector<value_type> items() const;

    /// Every key and its entry as a shared_ndarray<T>, in insertion order (a snapshot).
    /// @throws dtype_mismatch (naming the key) if an entry holds another dtype
    template <class T>
    std::vector<std::pair<std::string, shared_ndarray<T>>> items() const
    {
        auto& c = impl("items");
        std::vector<std::pair<std::string, shared_ndarray<T>>> out;
        for (auto& p :
             c.fetch_all("items", [&](const detail::entry_ref& e) { return c.template attach_typed<T>(e, "items"); })) {
            out.emplace_back(std::move(p.first.key), std::move(p.second));
        }
        return out;
    }

    /// A copy of every entry in this process's own memory (a snapshot).
    /// @throws dtype_mismatch (naming the key) if an entry holds another dtype
    template <class T>
    std::map<std::string, xt::xarray<T>> copy() const
    {
        std::map<std::string, xt::xarray<T>> out;
        for (auto& kv : items<const T>()) {
            out.emplace(std::move(kv.first), kv.second.copy());
        }
        return out;
    }

    /// Iteration over a snapshot of the entries taken now, in insertion order: pairs of a key and
    /// an any_ndarray.
    NDSHM_DECL iterator begin() const;
    iterator end() const { return iterator(); }

private:
    explicit shared_dict(std::shared_ptr<detail::collection_impl> impl) : collection_handle(std::move(impl)) {}

    /// Finds `key` under the lock (for collection_impl::fetch).
    struct key_locator {
        detail::collection_impl& c;
        const std::string& key;
        detail::entry_locator operator()(detail::collection_impl::guard& g) const
        {
            const auto r = c.find_key(key, g.op());
            if (!r) {
                return std::nullopt;
            }
            return std::make_pair(*r, std::size_t(0));
        }
    };

    NDSHM_DECL void check_key(const char* op, const std::string& key) const;

    [[noreturn]] NDSHM_DECL void raise_no_key(const char* op, const std::string& key) const;

    /// Throws not_found: pop found the segment of entry `key` gone, and dropped the entry.
    [[noreturn]] NDSHM_DECL void raise_popped_gone(const std::string& key) const;

    /// Puts the one new entry in `added` under its key: replacing the key's entry if `replace`, else
    /// only if the key is absent. Returns whether it went in.
    NDSHM_DECL static bool put(detail::collection_impl& c, const char* op, std::vector<detail::new_entry>& added,
                               bool replace);

    /// Puts every entry of `added` in one change; of a key given twice, the last one.
    NDSHM_DECL static void update_with(detail::collection_impl& c, std::vector<detail::new_entry>& added);
};

} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm {

bool shared_dict::contains(const std::string& key) const
{
    auto& c = impl("contains");
    detail::collection_impl::guard g(c, "contains");
    return c.find_key(key, g.op()).has_value();
}

any_ndarray shared_dict::get(const std::string& key) const
{
    auto& c = impl("get");
    auto a = c.fetch("get", key_locator{c, key},
                     [&](const detail::entry_ref& e) { return c.attach_any_entry(e, attach_any, "get"); });
    if (!a) {
        raise_no_key("get", key);
    }
    return std::move(*a);
}

void shared_dict::update(const shared_dict& other)
{
    auto& c = impl("update");
    std::vector<detail::new_entry> added;
    for (const auto& kv : other.items()) {
        added.push_back(c.make_entry(kv.first, kv.second, "update"));
    }
    update_with(c, added);
}

bool shared_dict::erase(const std::string& key)
{
    auto& c = impl("erase");
    bool erased = false;
    std::vector<detail::new_entry> none;
    c.change("erase", none, [&](detail::collection_edit& edit) {
        const auto r = c.find_key(key, "erase");
        if (!r) {
            return;
        }
        edit.order.erase(edit.order.begin() + static_cast<std::ptrdiff_t>(c.position_in(edit.order, *r, "erase")));
        edit.removed.push_back(*r);
        erased = true;
    });
    return erased;
}

void shared_dict::clear()
{
    auto& c = impl("clear");
    std::vector<detail::new_entry> none;
    c.change("clear", none, [&](detail::collection_edit& edit) {
        edit.removed = edit.order;
        edit.order.clear();
    });
}

std::vector<std::string> shared_dict::keys() const
{
    auto& c = impl("keys");
    detail::collection_impl::guard g(c, "keys");
    std::vector<std::string> out;
    for (auto& e : c.read_all("keys")) {
        out.push_back(std::move(e.key));
    }
    return out;
}

std::vector<any_ndarray> shared_dict::values() const
{
    std::vector<any_ndarray> out;
    for (auto& kv : items()) {
        out.push_back(std::move(kv.second));
    }
    return out;
}

std::vector<shared_dict::value_type> shared_dict::items() const
{
    auto& c = impl("items");
    std::vector<value_type> out;
    for (auto& p :
         c.fetch_all("items", [&](const detail::entry_ref& e) { return c.attach_any_entry(e, attach_any, "items"); })) {
        out.emplace_back(std::move(p.first.key), std::move(p.second));
    }
    return out;
}

void shared_dict::check_key(const char* op, const std::string& key) const
{
    if (key.size() > detail::collection_max_key) {
        detail::raise<error>(op, name(),
                             "the key is " + std::to_string(key.size()) + " bytes long, more than " +
                                 std::to_string(detail::collection_max_key),
                             "use keys of at most 255 bytes", make_error_code(errc::invalid_argument));
    }
}

void shared_dict::raise_no_key(const char* op, const std::string& key) const
{
    detail::raise<not_found>(op, name(), "no key '" + detail::printable_key(key) + "'",
                             "check the key (keys() lists them), or use find<T>() to get an empty handle instead",
                             detail::errno_code(ENOENT));
}

bool shared_dict::put(detail::collection_impl& c, const char* op, std::vector<detail::new_entry>& added, bool replace)
{
    bool done = false;
    c.change(op, added, [&](detail::collection_edit& edit) {
        const auto r = c.find_key(added[0].key, op);
        if (!r) {
            edit.order.push_back(detail::added_mark);
        } else if (replace) {
            edit.order[c.position_in(edit.order, *r, op)] = detail::added_mark;
            edit.removed.push_back(*r);
        } else {
            return;
        }
        done = true;
    });
    if (!done) {
        added.clear(); // the copy made for nothing: its segment goes with it
    }
    return done;
}

void shared_dict::update_with(detail::collection_impl& c, std::vector<detail::new_entry>& added)
{
    std::map<std::string, std::size_t> last;
    for (std::size_t k = 0; k < added.size(); ++k) {
        last[added[k].key] = k;
    }
    std::vector<detail::new_entry> unique;
    for (std::size_t k = 0; k < added.size(); ++k) {
        if (last[added[k].key] == k) {
            unique.push_back(std::move(added[k]));
        }
    }
    added.clear(); // the values that a later one of the same key replaced
    c.change("update", unique, [&](detail::collection_edit& edit) {
        for (std::size_t k = 0; k < unique.size(); ++k) {
            const std::uint32_t mark = detail::added_mark | static_cast<std::uint32_t>(k);
            const auto r = c.find_key(unique[k].key, "update");
            if (!r) {
                edit.order.push_back(mark);
            } else {
                edit.order[c.position_in(edit.order, *r, "update")] = mark;
                edit.removed.push_back(*r);
            }
        }
    });
}

shared_dict::iterator shared_dict::begin() const
{
    return iterator(std::make_shared<const std::vector<value_type>>(items()));
}

void shared_dict::raise_popped_gone(const std::string& key) const
{
    detail::raise<not_found>("pop", name(),
                             "the segment of entry '" + detail::printable_key(key) +
                                 "' was gone (something outside the dict removed it); the "
                                 "entry was dropped",
                             "", detail::errno_code(ENOENT));
}

} // namespace ndshm
#endif // NDSHM_DEFINITIONS

#endif
