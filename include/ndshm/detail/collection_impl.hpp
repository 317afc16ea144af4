/// @file detail/collection_impl.hpp
/// What `shared_dict` (dict.hpp) and `shared_list` (list.hpp) have in common: the table in the
/// container's segment (detail/collection_format.hpp), its lock, atomic changes, the repair of a
/// change that a killed process left half done, entries made, attached and unlinked.
#ifndef NDSHM_DETAIL_COLLECTION_IMPL_HPP
#define NDSHM_DETAIL_COLLECTION_IMPL_HPP

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../any_ndarray.hpp"
#include "../dtype.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "../shared_ndarray.hpp"
#include "../shared_tensor.hpp"
#include "collection_format.hpp"
#include "npy.hpp"
#include "segment_impl.hpp"
#include "sync.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// A record number that names no record.
inline constexpr std::uint32_t no_record = 0xffffffffu;
/// In a planned order, `added_mark | k` stands for the k-th new entry (its record is picked later).
inline constexpr std::uint32_t added_mark = 0x80000000u;

/// A new entry: an array segment this process made (or was handed), published, and still owns
/// until the container takes it over.
struct new_entry {
    std::string key;
    std::shared_ptr<mapping> map;
    ndshm::dtype type = ndshm::dtype::float64;
    std::uint64_t data_bytes = 0;
};

/// What a record says about an entry: a copy, read under the lock.
struct entry_ref {
    std::uint32_t record = no_record;
    std::size_t position = 0; ///< where it stands in the order
    std::string key;
    std::string name;
    ndshm::dtype type = ndshm::dtype::float64;
    file_id id;
    std::uint64_t created_ns = 0;
    std::uint64_t segment_bytes = 0;
    std::uint64_t data_bytes = 0;
};

/// Finds an entry under the lock: its record and its position, or nothing.
using entry_locator = std::optional<std::pair<std::uint32_t, std::size_t>>;

/// A change to the table, planned under the lock and then committed.
struct collection_edit {
    std::vector<std::uint32_t> order;    ///< the new order (added_mark | k for new entry k)
    std::vector<std::uint32_t> removed;  ///< records that leave and whose segments are unlinked
    std::uint32_t handed = no_record;    ///< a record that leaves, its segment handed to the caller
    std::shared_ptr<mapping> handed_map; ///< the caller's mapping of that segment
};

template <class V>
inline constexpr bool always_false = false;

/// The state behind shared_dict and shared_list handles of one process: the mapping of the
/// container's segment and the address of its table.
class collection_impl {
public:
    collection_impl(std::shared_ptr<mapping> m, collection_control* ctl, const collection_layout& l, std::uint32_t kind,
                    const options& opt)
        : m_map(std::move(m)), m_ctl(ctl), m_data(reinterpret_cast<unsigned char*>(ctl)), m_layout(l), m_kind(kind)
    {
        m_entry_opt.directory = m_map->loc().dir;
        m_entry_opt.mode = __atomic_load_n(&ctl->entry_mode, __ATOMIC_RELAXED);
        m_entry_opt.populate = opt.populate;
        m_entry_opt.ready_timeout = std::chrono::milliseconds(0); // entries are published before they enter
    }
    collection_impl(const collection_impl&) = delete;
    collection_impl& operator=(const collection_impl&) = delete;

    /// The owner's last handle removes the container and every entry in it.
    ~collection_impl()
    {
        try {
            if (m_map->owned()) {
                // A destructor waits a bounded time for a lock that a stopped process may hold.
                remove_now("remove " + std::string(noun()), std::chrono::steady_clock::now() + std::chrono::seconds(1));
            }
        } catch (...) {
            // The mapping still unlinks the container's name; entries left behind name this process as
            // their owner, and `ndshm gc` reclaims them once it has exited.
        }
    }

    const std::string& name() const noexcept { return m_map->name(); }
    const char* noun() const noexcept { return collection_noun(m_kind); }
    std::uint32_t kind() const noexcept { return m_kind; }
    std::size_t capacity() const noexcept { return m_layout.capacity; }
    /// Entries now (a snapshot: other processes may change it at once).
    std::size_t size() const noexcept
    {
        return static_cast<std::size_t>(std::min<std::uint64_t>(view_size(view()), m_layout.capacity));
    }
    std::uint64_t view() const noexcept { return __atomic_load_n(&m_ctl->view, __ATOMIC_ACQUIRE); }
    const options& entry_options() const noexcept { return m_entry_opt; }

    /// Holds the container's lock for a scope. On taking it: checks the control block, refuses a
    /// removed container (unless `removing`), and repairs a change that a dead holder left half done.
    class guard {
    public:
        guard(collection_impl& c, const std::string& op,
              std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max(),
              bool removing = false)
            : m_op(op), m_lock(c.m_ctl->lock, deadline, lock_context{m_op, c.name(), c.lock_name()})
        {
            if (!m_lock.locked()) {
                return;
            }
            c.check_control(m_op);
            if (__atomic_load_n(&c.m_ctl->dirty, __ATOMIC_ACQUIRE) != 0) {
                c.recover(m_op); // also finishes a removal that a dead process began
            }
            if (!removing && __atomic_load_n(&c.m_ctl->closed, __ATOMIC_ACQUIRE) != 0) {
                raise<error>(m_op, c.name(), std::string("the ") + c.noun() + " was removed",
                             std::string("create a new ") + c.noun() + "; this handle can only be reset",
                             errno_code(EIDRM));
            }
        }
        guard(const guard&) = delete;
        guard& operator=(const guard&) = delete;
        bool locked() const noexcept { return m_lock.locked(); }
        void unlock() noexcept { m_lock.unlock(); }
        const std::string& op() const noexcept { return m_op; }

    private:
        std::string m_op;
        held_lock m_lock;
    };

    // ---- reading the table (under the lock) ----

    /// The current order: record numbers, each checked to lie in the pool.
    std::vector<std::uint32_t> current_order(const std::string& op) const
    {
        const std::uint64_t v = view();
        const std::uint32_t* o = order(view_buffer(v));
        std::vector<std::uint32_t> out(o, o + view_size(v));
        for (std::size_t i = 0; i < out.size(); ++i) {
            if (out[i] >= m_layout.records) {
                corrupt(op, "position " + std::to_string(i) + " names record " + std::to_string(out[i]) +
                                ", beyond its " + std::to_string(m_layout.records) + " records");
            }
        }
        return out;
    }

    /// The record at position `i` of the current order, or nothing if `i` is not below the size.
    std::optional<std::uint32_t> record_at(std::size_t i, const std::string& op) const
    {
        const std::uint64_t v = view();
        if (i >= view_size(v)) {
            return std::nullopt;
        }
        const std::uint32_t r = order(view_buffer(v))[i];
        if (r >= m_layout.records) {
            corrupt(op, "position " + std::to_string(i) + " names record " + std::to_string(r) + ", beyond its " +
                            std::to_string(m_layout.records) + " records");
        }
        return r;
    }

    /// The entry in record `r` at `position`; format_error if the record is not a valid entry.
    entry_ref read_entry(std::uint32_t r, std::size_t position, const std::string& op) const
    {
        if (r >= m_layout.records) {
            corrupt(op, "it names record " + std::to_string(r) + ", beyond its " + std::to_string(m_layout.records) +
                            " records");
        }
        collection_record rec;
        std::memcpy(&rec, &record(r), sizeof rec);
        rec.state = __atomic_load_n(&record(r).state, __ATOMIC_ACQUIRE);
        entry_ref e;
        if (!collection_record_valid(rec, m_kind, e.name)) {
            corrupt(op, "record " + std::to_string(r) + " (position " + std::to_string(position) +
                            ") does not describe an entry");
        }
        e.record = r;
        e.position = position;
        e.type = static_cast<ndshm::dtype>(rec.dtype);
        e.id = file_id{rec.dev, rec.ino};
        e.created_ns = rec.created_ns;
        e.segment_bytes = rec.segment_bytes;
        e.data_bytes = rec.data_bytes;
        if (m_kind == kind_dict) {
            e.key.assign(key_of(r), rec.key_bytes);
            if (collection_hash(e.key.data(), e.key.size()) != rec.key_hash) {
                corrupt(op, "record " + std::to_string(r) + " has a key that does not match its hash");
            }
        }
        return e;
    }

    /// Every entry in order.
    std::vector<entry_ref> read_all(const std::string& op) const
    {
        const std::vector<std::uint32_t> o = current_order(op);
        std::vector<entry_ref> out;
        out.reserve(o.size());
        for (std::size_t i = 0; i < o.size(); ++i) {
            out.push_back(read_entry(o[i], i, op));
        }
        return out;
    }

    /// Where record `r` stands in `order`; format_error if it is not there (the index and the order
    /// disagree).
    std::size_t position_in(const std::vector<std::uint32_t>& order, std::uint32_t r, const std::string& op) const
    {
        const auto it = std::find(order.begin(), order.end(), r);
        if (it == order.end()) {
            corrupt(op, "its index names record " + std::to_string(r) + ", which is not among its entries");
        }
        return static_cast<std::size_t>(it - order.begin());
    }

    /// The record of dict key `key` (through the index), or nothing.
    std::optional<std::uint32_t> find_key(const std::string& key, const std::string& op) const
    {
        const std::uint64_t h = collection_hash(key.data(), key.size());
        const std::size_t mask = m_layout.index_slots - 1;
        const std::uint32_t* idx = index();
        std::size_t i = static_cast<std::size_t>(h) & mask;
        for (std::size_t n = 0; n < m_layout.index_slots; ++n, i = (i + 1) & mask) {
            const std::uint32_t v = idx[i];
            if (v == 0) {
                return std::nullopt;
            }
            if (v > m_layout.records) {
                corrupt(op, "its index names record " + std::to_string(v - 1) + ", beyond its " +
                                std::to_string(m_layout.records) + " records");
            }
            const collection_record& rec = record(v - 1);
            if (rec.key_hash == h && rec.key_bytes == key.size() &&
                __atomic_load_n(&rec.state, __ATOMIC_ACQUIRE) == record_filled &&
                std::memcmp(key_of(v - 1), key.data(), key.size()) == 0) {
                return v - 1;
            }
        }
        corrupt(op, "its index has no free slot");
    }

    // ---- attaching entries (outside the lock, or under it) ----

    /// A mapping of entry `e`'s segment and its array, or null if the segment is gone or is not the
    /// one the record names any more (the entry was replaced or removed meanwhile). A segment this
    /// process maps already is shared without a system call: the record knows its identity.
    std::shared_ptr<mapping> attach_entry(const entry_ref& e, bool writable, npy_info& info,
                                          const std::string& op) const
    {
        const location loc{m_map->loc().dir, e.name};
        segment_layout layout;
        if (!m_entry_opt.populate) {
            if (auto r = attached_regions().find(e.id, writable, static_cast<std::size_t>(e.segment_bytes), layout)) {
                if (layout.kind == kind_array && layout.trailer_off != SIZE_MAX &&
                    layout.trailer_off + sizeof(trailer) <= r->size()) {
                    auto* t = reinterpret_cast<trailer*>(r->base() + layout.trailer_off);
                    if (t->created_ns == e.created_ns && layout.info.type == e.type) {
                        auto m = std::make_shared<mapping>(loc, r, writable);
                        m->set_id(e.id);
                        m->set_trailer(t);
                        info = layout.info;
                        return m;
                    }
                }
            }
        }
        options o = m_entry_opt;
        o.read_only = !writable;
        std::shared_ptr<mapping> m;
        std::uint32_t kind = 0;
        try {
            m = open_npy_segment(o, e.name, op, info, kind);
        } catch (const not_found&) {
            return nullptr;
        }
        if (kind != kind_array || m->id() != e.id || m->get_trailer() == nullptr ||
            m->get_trailer()->created_ns != e.created_ns) {
            return nullptr;
        }
        if (info.type != e.type) {
            corrupt(op, "entry " + describe(e) + " is recorded as " + dtype_name(e.type) + ", but its segment '" +
                            e.name + "' holds " + dtype_name(info.type));
        }
        return m;
    }

    /// A typed handle of entry `e` (T may be const: a read-only mapping), or an empty handle if the
    /// segment is gone. Throws dtype_mismatch naming both types.
    template <class T>
    shared_ndarray<T> attach_typed(const entry_ref& e, const std::string& op) const
    {
        check_entry_dtype<T>(e, op);
        npy_info info;
        auto m = attach_entry(e, !std::is_const_v<T>, info, op);
        if (!m) {
            return {};
        }
        return array_access::make<T>(std::move(m), info);
    }

    /// A dtype-erased handle of entry `e` (writable), or an empty handle if the segment is gone.
    any_ndarray attach_any_entry(const entry_ref& e, const std::string& op) const
    {
        options o = m_entry_opt;
        any_ndarray a;
        try {
            a = attach_any(e.name, o);
        } catch (const not_found&) {
            return {};
        } catch (const format_error& x) {
            if (x.code() == make_error_code(errc::wrong_kind)) {
                return {}; // another kind of segment took the name: not the entry
            }
            throw;
        }
        const std::shared_ptr<mapping> m = a.visit(
            [](const auto& h) -> std::shared_ptr<mapping> { return array_access::mapping_of(h); });
        if (!m || m->id() != e.id || m->get_trailer() == nullptr || m->get_trailer()->created_ns != e.created_ns) {
            return {};
        }
        if (a.dtype() != e.type) {
            corrupt(op, "entry " + describe(e) + " is recorded as " + dtype_name(e.type) + ", but its segment '" +
                            e.name + "' holds " + dtype_name(a.dtype()));
        }
        return a;
    }

    /// The handle that `attach(entry)` makes of the entry that `locate(guard)` finds (a record and its
    /// position), or nothing if it finds none. The record is read under the lock and the segment
    /// attached after it; if a change replaced or removed the entry meanwhile, the lookup runs again,
    /// and the third time the segment is attached under the lock.
    template <class Locate, class Attach>
    auto fetch(const std::string& op, Locate&& locate, Attach&& attach)
        -> std::optional<std::decay_t<decltype(attach(std::declval<const entry_ref&>()))>>
    {
        for (int attempt = 0;; ++attempt) {
            entry_ref e;
            {
                guard g(*this, op);
                const entry_locator found = locate(g);
                if (!found) {
                    return std::nullopt;
                }
                e = read_entry(found->first, found->second, op);
                if (attempt >= 2) {
                    auto h = attach(e);
                    if (h.empty()) {
                        raise_vanished(op, e);
                    }
                    return h;
                }
            }
            auto h = attach(e);
            if (!h.empty()) {
                return h;
            }
        }
    }

    /// The handles that `attach(entry)` makes of every entry, in order: a snapshot of the container
    /// when its table was read. If a change removed an entry before its segment was attached, all are
    /// read again (the third time under the lock).
    template <class Attach>
    auto fetch_all(const std::string& op, Attach&& attach)
        -> std::vector<std::pair<entry_ref, std::decay_t<decltype(attach(std::declval<const entry_ref&>()))>>>
    {
        using handle = std::decay_t<decltype(attach(std::declval<const entry_ref&>()))>;
        for (int attempt = 0;; ++attempt) {
            std::vector<entry_ref> refs;
            std::vector<std::pair<entry_ref, handle>> out;
            guard g(*this, op);
            refs = read_all(op);
            if (attempt < 2) {
                g.unlock();
            }
            out.reserve(refs.size());
            bool complete = true;
            for (auto& e : refs) {
                auto h = attach(e);
                if (h.empty()) {
                    if (attempt >= 2) {
                        raise_vanished(op, e);
                    }
                    complete = false;
                    break;
                }
                out.emplace_back(std::move(e), std::move(h));
            }
            if (complete) {
                return out; // every segment attached existed, unchanged, when the table was read
            }
        }
    }

    // ---- changing the table ----

    /// Makes a change: `plan(edit)` gets the current order in `edit.order` and says what changes (it may
    /// throw: then nothing changes); the new entries `added` (segments this process made) go in as
    /// `added_mark | k`. The container takes over the new entries that the plan placed in the order;
    /// the others stay the caller's (whose handles unlink them); the removed ones are unlinked. A plan
    /// that changes nothing commits nothing.
    template <class Plan>
    void change(const std::string& op, std::vector<new_entry>& added, Plan&& plan)
    {
        guard g(*this, op);
        collection_edit edit;
        edit.order = current_order(op);
        const std::vector<std::uint32_t> before = edit.order;
        plan(edit);
        if (edit.order == before && edit.removed.empty() && edit.handed == no_record) {
            return;
        }
        if (edit.order.size() > m_layout.capacity) {
            raise_full(op, edit.order.size());
        }
        commit(op, edit, added);
    }

    /// A new entry from a segment made and owned by this process (create, from_array), published.
    template <class T>
    static new_entry entry_of(std::string key, const shared_ndarray<T>& a)
    {
        new_entry n;
        n.key = std::move(key);
        n.map = array_access::mapping_of(a);
        n.type = dtype_of<T>;
        n.data_bytes = a.nbytes();
        return n;
    }

    /// A new entry segment holding a copy of `value`: an xtensor expression, a shared_ndarray or
    /// shared_tensor (copied with its memory order), or an any_ndarray. It lives in the container's
    /// backend, with the container's permission bits, and this process owns it until the container
    /// takes it over.
    template <class V>
    new_entry make_entry(std::string key, const V& value, const std::string& op) const
    {
        if constexpr (std::is_same_v<V, any_ndarray>) {
            if (value.empty()) {
                raise_empty_value(op);
            }
            return value.visit([&](const auto& h) { return make_entry(std::move(key), h, op); });
        } else if constexpr (is_shared_array<V>::value) {
            using U = std::remove_const_t<typename V::value_type>;
            if (value.empty()) {
                raise_empty_value(op);
            }
            shape_type shape(value.shape().begin(), value.shape().end());
            auto c = shared_ndarray<U>::create(shape, value.fortran_order() ? ndshm::order::fortran : ndshm::order::c,
                                               m_entry_opt);
            if (value.nbytes() != 0) {
                std::memcpy(c.data(), value.data(), value.nbytes());
            }
            return entry_of(std::move(key), c);
        } else if constexpr (xt::is_xexpression<V>::value) {
            using U = std::remove_cv_t<typename V::value_type>;
            static_assert(is_element_type_v<U>, "ndshm: the expression's value_type is not an element type ndshm "
                                                "stores (bool, integers, float, double, std::complex)");
            return entry_of(std::move(key), shared_ndarray<U>::from_array(value, m_entry_opt));
        } else {
            static_assert(always_false<V>, "ndshm: an entry of a shared_dict or shared_list is an xtensor expression "
                                           "(xt::xarray, xt::xtensor, a view, ...), a shared_ndarray, a "
                                           "shared_tensor or an any_ndarray");
        }
    }

    /// A new entry from an array the caller hands over without a copy (adopt): it must be a whole
    /// ndshm array segment this process owns, in the container's backend.
    template <class T>
    new_entry adopted_entry(std::string key, const shared_ndarray<T>& a, const std::string& op) const
    {
        const std::shared_ptr<mapping>& am = array_access::mapping_of(a);
        if (!am) {
            raise_empty_value(op);
        }
        const auto refuse = [&](const std::string& why, const std::string& fix) {
            raise<error>(op + " '" + am->name() + "' into", name(), why, fix, make_error_code(errc::invalid_argument));
        };
        const trailer* t = am->get_trailer();
        if (t == nullptr || !am->writable() || t->kind != kind_array) {
            refuse("it is not a writable ndshm array segment (a foreign .npy, a read-only handle, or part of another "
                   "kind of segment)",
                   "insert a copy with assign()/insert()/append() instead");
        }
        const bool whole = reinterpret_cast<const unsigned char*>(a.data()) == am->base() + t->data_offset &&
                           a.nbytes() == t->data_bytes &&
                           reinterpret_cast<const unsigned char*>(t) + sizeof(trailer) == am->base() + am->size();
        if (!whole) {
            refuse("the handle is not the whole array of its segment (a composite object's member or a channel slot)",
                   "insert a copy with assign()/insert()/append() instead");
        }
        if (!am->owned()) {
            refuse("this process does not own the array (it was attached, persisted, handed over already, or created "
                   "by another process)",
                   "adopt arrays this process created, or insert a copy");
        }
        if (load_acquire(t->state) != state_ready) {
            refuse("the array is not published yet", "adopt it after create() or from_array() returned");
        }
        if (am->loc().dir != m_map->loc().dir) {
            refuse("the array lives in another backend ('" + am->loc().path() + "') than the " + noun() + " ('" +
                       m_map->loc().path() + "')",
                   "create it with the same options::directory (or NDSHM_DIR), or insert a copy");
        }
        if (am->name().size() >= collection_name_room) {
            refuse("its name is longer than " + std::to_string(collection_name_room - 1) + " characters",
                   "give it a shorter name (generated names have 30), or insert a copy");
        }
        return entry_of(std::move(key), a);
    }

    /// Marks the container persisted, and every entry in it: no handle unlinks them any more and gc
    /// keeps them, until remove() (on a handle opened by name) removes them all.
    void persist(const std::string& op)
    {
        guard g(*this, op);
        m_map->persist();
        for (const entry_ref& e : read_all(op)) {
            npy_info info;
            if (auto m = attach_entry(e, true, info, op)) {
                fetch_or(m->get_trailer()->flags, flag_persisted);
            }
        }
    }

    /// Closes the container for every process, unlinks every entry (each only while its name still
    /// names the entry's segment) and the container's name. Waits for the lock until `deadline`;
    /// without it, only the container's own name goes.
    void remove_now(const std::string& op, std::chrono::steady_clock::time_point deadline)
    {
        guard g(*this, op, deadline, true);
        if (!g.locked()) {
            __atomic_store_n(&m_ctl->closed, 1u, __ATOMIC_RELEASE);
            m_map->disown();
            (void)unlink_if_same(m_map->loc(), m_map->id());
            raise<error>(op, name(),
                         std::string("the ") + noun() +
                             "'s lock stayed taken (a stopped process holds it), so its entries were not removed; "
                             "its name was",
                         "run `ndshm gc` once the process that holds it has ended", errno_code(ETIMEDOUT));
        }
        __atomic_store_n(&m_ctl->closed, 1u, __ATOMIC_RELEASE);
        __atomic_store_n(&m_ctl->dirty, 1u, __ATOMIC_RELEASE);
        const std::uint64_t v = view();
        __atomic_store_n(&m_ctl->view, view_pack(0, view_buffer(v), view_generation(v) + 1), __ATOMIC_RELEASE);
        for (std::uint32_t r = 0; r < m_layout.records; ++r) {
            if (__atomic_load_n(&record(r).state, __ATOMIC_ACQUIRE) != record_free) {
                unlink_record(r);
            }
        }
        if (m_kind == kind_dict) {
            std::memset(index(), 0, m_layout.index_slots * sizeof(std::uint32_t));
        }
        __atomic_store_n(&m_ctl->dirty, 0u, __ATOMIC_RELEASE);
        g.unlock();
        m_map->disown();
        (void)unlink_if_same(m_map->loc(), m_map->id());
    }

    /// "'key'" for a dict's entry, "at position i" for a list's.
    std::string describe(const entry_ref& e) const
    {
        return m_kind == kind_dict ? "'" + printable_key(e.key) + "'" : "at position " + std::to_string(e.position);
    }

    template <class T>
    void check_entry_dtype(const entry_ref& e, const std::string& op) const
    {
        constexpr ndshm::dtype want = dtype_of<T>;
        if (e.type != want) {
            raise<dtype_mismatch>(op, name(),
                                  "entry " + describe(e) + " holds " + dtype_name(e.type) + " ('" +
                                      dtype_descr(e.type) + "'), not " + dtype_name(want) + " ('" + dtype_descr(want) +
                                      "') as requested",
                                  std::string("ask for the element type for ") + dtype_name(e.type) +
                                      ", or take it dtype-erased as an any_ndarray",
                                  make_error_code(errc::dtype_mismatch));
        }
    }

    [[noreturn]] void raise_vanished(const std::string& op, const entry_ref& e) const
    {
        raise<not_found>(op, name(),
                         "the segment of entry " + describe(e) + " ('" + e.name + "') is gone: something outside the " +
                             noun() + " removed it",
                         "erase or replace that entry", errno_code(ENOENT));
    }

    [[noreturn]] void raise_full(const std::string& op, std::size_t wanted) const
    {
        raise<out_of_space>(op, name(),
                            std::string("the ") + noun() + " is full: the change needs room for " +
                                std::to_string(wanted) + " entries, and its capacity is " +
                                std::to_string(m_layout.capacity),
                            std::string("remove entries first, or create the ") + noun() +
                                " with a larger capacity (up to " + std::to_string(collection_max_capacity) + ")",
                            errno_code(ENOSPC));
    }

    [[noreturn]] void raise_empty_value(const std::string& op) const
    {
        raise<error>(op, name(), "the array handle given is empty", "pass a handle that holds an array",
                     make_error_code(errc::invalid_argument));
    }

    [[noreturn]] void corrupt(const std::string& op, const std::string& why) const
    {
        raise<format_error>(op, name(), std::string("corrupt ") + noun() + " table: " + why,
                            std::string("something other than ndshm wrote into it; remove it (`ndshm rm`) and create "
                                        "a new ") +
                                noun(),
                            make_error_code(errc::corrupt_control));
    }

private:
    template <class V>
    struct is_shared_array : std::false_type {
    };
    template <class T>
    struct is_shared_array<shared_ndarray<T>> : std::true_type {
    };
    template <class T, std::size_t N>
    struct is_shared_array<shared_tensor<T, N>> : std::true_type {
    };

    const char* lock_name() const noexcept { return m_kind == kind_dict ? "the dict's lock" : "the list's lock"; }

    collection_record& record(std::uint32_t r) const noexcept
    {
        return *reinterpret_cast<collection_record*>(m_data + m_layout.records_off +
                                                     static_cast<std::size_t>(r) * m_layout.record_bytes);
    }
    char* key_of(std::uint32_t r) const noexcept
    {
        return reinterpret_cast<char*>(&record(r)) + sizeof(collection_record);
    }
    std::uint32_t* order(std::uint64_t buffer) const noexcept
    {
        return reinterpret_cast<std::uint32_t*>(m_data + m_layout.order_off +
                                                static_cast<std::size_t>(buffer) * m_layout.capacity * 4);
    }
    std::uint32_t* index() const noexcept { return reinterpret_cast<std::uint32_t*>(m_data + m_layout.index_off); }

    /// Checks the control block under the lock.
    void check_control(const std::string& op) const
    {
        collection_control c{}; // the fields before the lock: the lock's own words change under waiters
        std::memcpy(static_cast<void*>(&c), m_ctl, offsetof(collection_control, lock));
        c.view = view();
        c.dirty = __atomic_load_n(&m_ctl->dirty, __ATOMIC_ACQUIRE);
        c.closed = __atomic_load_n(&m_ctl->closed, __ATOMIC_ACQUIRE);
        collection_layout l;
        const std::string why = collection_control_problem(c, m_kind, m_layout.total, l);
        if (!why.empty()) {
            corrupt(op, why);
        }
        if (l.capacity != m_layout.capacity) {
            corrupt(op, "its capacity changed from " + std::to_string(m_layout.capacity) + " to " +
                            std::to_string(l.capacity));
        }
    }

    /// The process recorded as the container's owner in its trailer.
    process_identity owner() const noexcept
    {
        process_identity p;
        if (const trailer* t = m_map->get_trailer()) {
            p.pid = __atomic_load_n(&t->creator_pid, __ATOMIC_ACQUIRE);
            p.start = __atomic_load_n(&t->creator_start, __ATOMIC_ACQUIRE);
        }
        return p;
    }

    bool persisted() const noexcept
    {
        const trailer* t = m_map->get_trailer();
        return t != nullptr && (load_acquire(t->flags) & flag_persisted) != 0;
    }

    /// Commits `edit` under the lock (see collection_format.hpp): nothing after the first store can
    /// throw, so a change is either whole or, if this process is killed, repaired by the next holder.
    void commit(const std::string& op, collection_edit& edit, std::vector<new_entry>& added)
    {
        // Everything that can fail comes first: which new entries the plan placed (only those are
        // taken over: one it did not place would hold a record outside the order until the next repair),
        // free records for them, and the memory.
        std::vector<std::size_t> used;
        for (const std::uint32_t r : edit.order) {
            if ((r & added_mark) != 0) {
                const std::size_t k = r & ~added_mark;
                if (k >= added.size() || std::find(used.begin(), used.end(), k) != used.end()) {
                    raise<error>(op, name(),
                                 "internal error: a change places new entry " + std::to_string(k) + " of " +
                                     std::to_string(added.size()) + " twice or out of range",
                                 "report this as a bug in ndshm", make_error_code(errc::invalid_argument));
                }
                used.push_back(k);
            }
        }
        std::vector<std::uint32_t> fresh(added.size(), no_record);
        std::vector<std::uint32_t> taken;
        taken.reserve(used.size());
        std::uint64_t hint = m_ctl->free_hint % m_layout.records;
        for (const std::size_t k : used) {
            std::uint32_t found = no_record;
            for (std::size_t n = 0; n < m_layout.records; ++n) {
                const auto r = static_cast<std::uint32_t>((hint + n) % m_layout.records);
                if (__atomic_load_n(&record(r).state, __ATOMIC_ACQUIRE) == record_free &&
                    std::find(taken.begin(), taken.end(), r) == taken.end()) {
                    found = r;
                    break;
                }
            }
            if (found == no_record) {
                raise_full(op, view_size(view()) + used.size());
            }
            fresh[k] = found;
            taken.push_back(found);
            hint = found + 1u;
        }
        for (std::uint32_t& r : edit.order) {
            if ((r & added_mark) != 0) {
                r = fresh[r & ~added_mark];
            }
        }
        const process_identity to = owner();
        const bool persist_entries = persisted();

        // The change.
        __atomic_store_n(&m_ctl->dirty, 1u, __ATOMIC_SEQ_CST);
        for (const std::size_t k : used) {
            fill_record(fresh[k], added[k]);
            // The record is filled before the segment is the container's: if this process dies from
            // here until the commit, the next holder finds the record outside the order and unlinks it.
            trailer& t = *added[k].map->get_trailer();
            set_trailer_owner(t, to);
            if (persist_entries) {
                fetch_or(t.flags, flag_persisted);
            }
            added[k].map->disown();
        }
        const std::uint64_t v = view();
        const std::uint64_t next = 1 - view_buffer(v);
        if (!edit.order.empty()) {
            std::memcpy(order(next), edit.order.data(), edit.order.size() * sizeof(std::uint32_t));
        }
        __atomic_store_n(&m_ctl->view, view_pack(edit.order.size(), next, view_generation(v) + 1), __ATOMIC_SEQ_CST);
        ++m_ctl->changes;

        // Afterwards: what left is unlinked (or handed over) and freed, and the index follows.
        for (const std::uint32_t r : edit.removed) {
            if (m_kind == kind_dict) {
                index_erase(r);
            }
            unlink_record(r);
        }
        if (edit.handed != no_record) {
            if (m_kind == kind_dict) {
                index_erase(edit.handed);
            }
            if (edit.handed_map) {
                trailer* t = edit.handed_map->get_trailer();
                __atomic_fetch_and(&t->flags, ~std::uint32_t(flag_persisted), __ATOMIC_ACQ_REL);
                set_trailer_owner(*t, this_process());
                try {
                    edit.handed_map->own();
                } catch (...) {
                    // No room to record it in this process: the trailer names this process, so `ndshm
                    // gc` reclaims the segment after it exits.
                }
            }
            __atomic_store_n(&record(edit.handed).state, record_free, __ATOMIC_RELEASE);
        }
        if (m_kind == kind_dict) {
            for (const std::uint32_t r : taken) {
                index_insert(r);
            }
        }
        m_ctl->free_hint = hint;
        __atomic_store_n(&m_ctl->dirty, 0u, __ATOMIC_RELEASE);
    }

    void fill_record(std::uint32_t r, const new_entry& n) noexcept
    {
        collection_record& rec = record(r);
        const trailer* t = n.map->get_trailer();
        rec.dtype = static_cast<std::uint32_t>(n.type);
        rec.key_bytes = static_cast<std::uint32_t>(n.key.size());
        rec.name_bytes = static_cast<std::uint32_t>(n.map->name().size());
        rec.key_hash = collection_hash(n.key.data(), n.key.size());
        rec.dev = n.map->id().dev;
        rec.ino = n.map->id().ino;
        rec.created_ns = t->created_ns;
        rec.segment_bytes = n.map->size();
        rec.data_bytes = n.data_bytes;
        std::memset(rec.name, 0, sizeof rec.name);
        std::memcpy(rec.name, n.map->name().data(), n.map->name().size());
        if (m_kind == kind_dict && !n.key.empty()) {
            std::memcpy(key_of(r), n.key.data(), n.key.size());
        }
        __atomic_store_n(&rec.state, record_filled, __ATOMIC_SEQ_CST);
    }

    /// Unlinks the segment of record `r` if its name still names that segment (device, inode and
    /// the creation time in its trailer), and frees the record. Never throws.
    void unlink_record(std::uint32_t r) noexcept
    {
        collection_record rec;
        std::memcpy(&rec, &record(r), sizeof rec);
        rec.state = record_filled;
        std::string seg;
        if (collection_record_valid(rec, m_kind, seg)) {
            try {
                const location loc{m_map->loc().dir, seg};
                fd_guard fd(open_location(loc, O_RDONLY, 0));
                struct stat st {};
                trailer t{};
                const file_id id{rec.dev, rec.ino};
                // While `fd` holds the file, its inode cannot pass to another file.
                if (fd.get() >= 0 && retry_eintr([&] { return sys().fstat(fd.get(), &st); }) == 0 && id_of(st) == id &&
                    static_cast<std::uint64_t>(st.st_size) == rec.segment_bytes &&
                    read_at(fd.get(), &t, sizeof t, static_cast<std::size_t>(rec.segment_bytes) - sizeof t,
                            "remove entry", seg) == sizeof t &&
                    std::memcmp(t.magic, trailer_magic, sizeof t.magic) == 0 && t.created_ns == rec.created_ns) {
                    (void)unlink_if_same(loc, id);
                }
            } catch (...) {
            }
        }
        __atomic_store_n(&record(r).state, record_free, __ATOMIC_RELEASE);
    }

    // ---- a dict's index: linear probing, record number + 1 per slot ----

    void index_insert(std::uint32_t r) noexcept
    {
        const std::size_t mask = m_layout.index_slots - 1;
        std::uint32_t* idx = index();
        std::size_t i = static_cast<std::size_t>(record(r).key_hash) & mask;
        for (std::size_t n = 0; n < m_layout.index_slots; ++n, i = (i + 1) & mask) {
            if (idx[i] == 0) {
                idx[i] = r + 1;
                return;
            }
        }
    }

    void index_erase(std::uint32_t r) noexcept
    {
        const std::size_t mask = m_layout.index_slots - 1;
        std::uint32_t* idx = index();
        std::size_t i = static_cast<std::size_t>(record(r).key_hash) & mask;
        std::size_t n = 0;
        for (; n < m_layout.index_slots && idx[i] != r + 1; ++n, i = (i + 1) & mask) {
            if (idx[i] == 0) {
                return;
            }
        }
        if (n == m_layout.index_slots) {
            return;
        }
        // Backward-shift deletion: later entries of the probe run move up, so no tombstone is needed.
        std::size_t j = i;
        for (n = 0; n < m_layout.index_slots; ++n) {
            j = (j + 1) & mask;
            const std::uint32_t v = idx[j];
            if (v == 0 || v > m_layout.records) {
                break;
            }
            const std::size_t home = static_cast<std::size_t>(record(v - 1).key_hash) & mask;
            const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays) {
                idx[i] = v;
                i = j;
            }
        }
        idx[i] = 0;
    }

    /// Repairs what a holder that died (or threw) in the middle of a change left: records filled but
    /// outside the current order are unlinked and freed, and a dict's index is rebuilt.
    void recover(const std::string& op)
    {
        const std::uint64_t v = view();
        const std::uint32_t* o = order(view_buffer(v));
        const std::size_t n = static_cast<std::size_t>(view_size(v));
        std::vector<unsigned char> in(m_layout.records, 0);
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint32_t r = o[i];
            if (r >= m_layout.records || in[r] != 0) {
                corrupt(op, "position " + std::to_string(i) + " names record " + std::to_string(r) +
                                (r >= m_layout.records ? ", beyond the pool" : ", which another position names too"));
            }
            (void)read_entry(r, i, op);
            in[r] = 1;
        }
        for (std::uint32_t r = 0; r < m_layout.records; ++r) {
            if (in[r] == 0 && __atomic_load_n(&record(r).state, __ATOMIC_ACQUIRE) != record_free) {
                unlink_record(r);
            }
        }
        if (m_kind == kind_dict) {
            std::memset(index(), 0, m_layout.index_slots * sizeof(std::uint32_t));
            for (std::size_t i = 0; i < n; ++i) {
                const std::string key(key_of(o[i]), record(o[i]).key_bytes);
                if (find_key(key, op)) {
                    corrupt(op, "key '" + printable_key(key) + "' is in it twice");
                }
                index_insert(o[i]);
            }
        }
        ++m_ctl->recoveries;
        __atomic_store_n(&m_ctl->dirty, 0u, __ATOMIC_RELEASE);
    }

    std::shared_ptr<mapping> m_map;
    collection_control* m_ctl;
    unsigned char* m_data;
    collection_layout m_layout;
    std::uint32_t m_kind;
    options m_entry_opt;
};

/// Creates the segment of an empty container of `kind` for `capacity` entries.
inline std::shared_ptr<collection_impl> create_collection(std::uint32_t kind, std::size_t capacity, const options& opt,
                                                          const std::string& op)
{
    const char* noun = collection_noun(kind);
    if (capacity == 0 || capacity > collection_max_capacity) {
        raise<error>(op, opt.name, "capacity " + std::to_string(capacity) + " is out of range",
                     "pass a capacity from 1 to " + std::to_string(collection_max_capacity),
                     make_error_code(errc::invalid_argument));
    }
    if (opt.read_only) {
        raise<error>(op, opt.name,
                     std::string("options::read_only is set, but a ") + noun + " is written by every user",
                     "leave options::read_only false", make_error_code(errc::invalid_argument));
    }
    const collection_layout l = make_collection_layout(kind, capacity);
    npy_info info;
    auto m = create_array_segment(opt, dtype::uint8, {l.total}, false, op, info);
    m->get_trailer()->kind = kind;
    auto* ctl = ::new (m->base() + info.data_offset) collection_control{};
    std::memcpy(ctl->magic, collection_magic, sizeof ctl->magic);
    ctl->version = collection_version;
    ctl->kind = kind;
    ctl->record_bytes = static_cast<std::uint32_t>(l.record_bytes);
    ctl->entry_mode = opt.mode;
    ctl->capacity = capacity;
    ctl->records = l.records;
    ctl->index_slots = l.index_slots;
    init_lock(&ctl->lock);
    m->publish();
    return std::make_shared<collection_impl>(std::move(m), ctl, l, kind, opt);
}

/// Opens the container `name` of `kind`, checking its header and control block.
inline std::shared_ptr<collection_impl> open_collection(std::uint32_t kind, const std::string& name, const options& opt,
                                                        const std::string& op)
{
    const std::string noun = collection_noun(kind);
    if (opt.read_only) {
        raise<error>(op, name, "options::read_only is set, but using a " + noun + " writes to its table",
                     "leave options::read_only false; entries can still be taken read-only (get<const T>)",
                     make_error_code(errc::invalid_argument));
    }
    npy_info info;
    std::uint32_t found = 0;
    auto m = open_npy_segment(opt, name, op, info, found);
    if (found != kind) {
        const char* what = found == 0              ? "a .npy without ndshm's trailer"
                           : found == kind_array   ? "an ndshm array"
                           : found == kind_object  ? "an ndshm composite object"
                           : found == kind_channel ? "an ndshm channel"
                           : found == kind_queue   ? "an ndshm array queue"
                           : found == kind_dict    ? "an ndshm shared_dict"
                           : found == kind_list    ? "an ndshm shared_list"
                                                   : "an ndshm segment of an unknown kind";
        raise<format_error>(op, name, std::string("the segment is ") + what + ", not a " + noun,
                            "check the name; shared_" + noun + "::create makes " + noun + "s",
                            make_error_code(errc::wrong_kind));
    }
    const auto corrupt = [&](const std::string& why) {
        raise<format_error>(op, name, "corrupt " + noun + " table: " + why, "remove it and create a new " + noun,
                            make_error_code(errc::corrupt_control));
    };
    if (info.type != dtype::uint8 || info.shape.size() != 1 || info.nbytes < sizeof(collection_control)) {
        corrupt("its header does not describe a " + noun);
    }
    auto* ctl = reinterpret_cast<collection_control*>(m->base() + info.data_offset);
    collection_control c;
    std::memcpy(static_cast<void*>(&c), ctl, sizeof c);
    collection_layout l;
    if (const std::string why = collection_control_problem(c, kind, info.nbytes, l); !why.empty()) {
        corrupt(why);
    }
    return std::make_shared<collection_impl>(std::move(m), ctl, l, kind, opt);
}

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
            const std::string type = std::string("shared_") + Derived::noun;
            raise<error>(op, "", "the " + type + " handle is empty",
                         std::string("create a ") + Derived::noun + " with " + type + "::create or open one with " +
                             type + "::open",
                         make_error_code(errc::invalid_argument));
        }
        return *m_impl;
    }

    std::shared_ptr<collection_impl> m_impl;
};

} // namespace ndshm::detail

#endif
