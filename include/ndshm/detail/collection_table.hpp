/// @file detail/collection_table.hpp
/// The table of a shared dictionary or list (dict.hpp, list.hpp) in its segment (see
/// collection_format.hpp) as one process sees it: its lock, reading entries under it, atomic changes,
/// the repair of a change that a killed process left half done, and the container's removal.
/// collection_impl.hpp adds the entries' segments.
#ifndef NDSHM_DETAIL_COLLECTION_TABLE_HPP
#define NDSHM_DETAIL_COLLECTION_TABLE_HPP

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../dtype.hpp"
#include "../error.hpp"
#include "collection_format.hpp"
#include "collection_index.hpp"
#include "config.hpp"
#include "segment_impl.hpp"
#include "segment_trailer.hpp"
#include "sync.hpp"
#include "sys.hpp"
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

/// The table of one container in this process: the mapping of its segment and the address of its table.
class collection_table {
public:
    collection_table(std::shared_ptr<mapping> m, collection_control* ctl, const collection_layout& l,
                     std::uint32_t kind)
        : m_map(std::move(m)), m_ctl(ctl), m_data(reinterpret_cast<unsigned char*>(ctl)), m_layout(l), m_kind(kind)
    {
    }
    collection_table(const collection_table&) = delete;
    collection_table& operator=(const collection_table&) = delete;

    /// The owner's last handle removes the container and every entry in it.
    NDSHM_DECL ~collection_table();

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
    /// The mapping of the container's segment.
    const std::shared_ptr<mapping>& container_map() const noexcept { return m_map; }

    /// Holds the container's lock for a scope. On taking it: checks the control block, refuses a
    /// removed container (unless `removing`), and repairs a change that a dead holder left half done.
    class guard {
    public:
        NDSHM_DECL guard(collection_table& c, const std::string& op,
                         std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max(),
                         bool removing = false);
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
    NDSHM_DECL std::vector<std::uint32_t> current_order(const std::string& op) const;

    /// The record at position `i` of the current order, or nothing if `i` is not below the size.
    NDSHM_DECL std::optional<std::uint32_t> record_at(std::size_t i, const std::string& op) const;

    /// The entry in record `r` at `position`; format_error if the record is not a valid entry.
    NDSHM_DECL entry_ref read_entry(std::uint32_t r, std::size_t position, const std::string& op) const;

    /// Every entry in order.
    NDSHM_DECL std::vector<entry_ref> read_all(const std::string& op) const;

    /// Where record `r` stands in `order`; format_error if it is not there (the index and the order
    /// disagree).
    NDSHM_DECL std::size_t position_in(const std::vector<std::uint32_t>& order, std::uint32_t r,
                                       const std::string& op) const;

    /// The record of dict key `key` (through the index), or nothing.
    NDSHM_DECL std::optional<std::uint32_t> find_key(const std::string& key, const std::string& op) const;

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

    /// Closes the container for every process, unlinks every entry (each only while its name still
    /// names the entry's segment) and the container's name. Waits for the lock until `deadline`;
    /// without it, only the container's own name goes.
    NDSHM_DECL void remove_now(const std::string& op, std::chrono::steady_clock::time_point deadline);

    [[noreturn]] NDSHM_DECL void raise_full(const std::string& op, std::size_t wanted) const;

    [[noreturn]] NDSHM_DECL void corrupt(const std::string& op, const std::string& why) const;

private:
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
    collection_index index() const noexcept
    {
        return collection_index{reinterpret_cast<std::uint32_t*>(m_data + m_layout.index_off), m_layout.index_slots,
                                m_layout.records};
    }

    /// Checks the control block under the lock.
    NDSHM_DECL void check_control(const std::string& op) const;

    bool persisted() const noexcept
    {
        const trailer* t = m_map->get_trailer();
        return t != nullptr && (load_acquire(t->flags) & flag_persisted) != 0;
    }

    /// Commits `edit` under the lock (see collection_format.hpp): nothing after the first store can
    /// throw, so a change is either whole or, if this process is killed, repaired by the next holder.
    NDSHM_DECL void commit(const std::string& op, collection_edit& edit, std::vector<new_entry>& added);

    NDSHM_DECL void fill_record(std::uint32_t r, const new_entry& n) noexcept;

    /// Unlinks the segment of record `r` if its name still names that segment (device, inode and
    /// the creation time in its trailer), and frees the record. Never throws.
    NDSHM_DECL void unlink_record(std::uint32_t r) noexcept;

    // ---- a dict's index (collection_index.hpp) ----

    void index_insert(std::uint32_t r) noexcept { index().insert(r, record(r).key_hash); }

    void index_erase(std::uint32_t r) noexcept
    {
        index().erase(r, record(r).key_hash, [this](std::uint32_t q) { return record(q).key_hash; });
    }

    /// Repairs what a holder that died (or threw) in the middle of a change left: records filled but
    /// outside the current order are unlinked and freed, and a dict's index is rebuilt.
    NDSHM_DECL void recover(const std::string& op);

    std::shared_ptr<mapping> m_map;
    collection_control* m_ctl;
    unsigned char* m_data;
    collection_layout m_layout;
    std::uint32_t m_kind;
};

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

collection_table::~collection_table()
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

collection_table::guard::guard(collection_table& c, const std::string& op,
                               std::chrono::steady_clock::time_point deadline, bool removing)
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
                     std::string("create a new ") + c.noun() + "; this handle can only be reset", errno_code(EIDRM));
    }
}

std::vector<std::uint32_t> collection_table::current_order(const std::string& op) const
{
    const std::uint64_t v = view();
    const std::uint32_t* o = order(view_buffer(v));
    std::vector<std::uint32_t> out(o, o + view_size(v));
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i] >= m_layout.records) {
            corrupt(op, "position " + std::to_string(i) + " names record " + std::to_string(out[i]) + ", beyond its " +
                            std::to_string(m_layout.records) + " records");
        }
    }
    return out;
}

std::optional<std::uint32_t> collection_table::record_at(std::size_t i, const std::string& op) const
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

entry_ref collection_table::read_entry(std::uint32_t r, std::size_t position, const std::string& op) const
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

std::vector<entry_ref> collection_table::read_all(const std::string& op) const
{
    const std::vector<std::uint32_t> o = current_order(op);
    std::vector<entry_ref> out;
    out.reserve(o.size());
    for (std::size_t i = 0; i < o.size(); ++i) {
        out.push_back(read_entry(o[i], i, op));
    }
    return out;
}

std::size_t collection_table::position_in(const std::vector<std::uint32_t>& order, std::uint32_t r,
                                          const std::string& op) const
{
    const auto it = std::find(order.begin(), order.end(), r);
    if (it == order.end()) {
        corrupt(op, "its index names record " + std::to_string(r) + ", which is not among its entries");
    }
    return static_cast<std::size_t>(it - order.begin());
}

std::optional<std::uint32_t> collection_table::find_key(const std::string& key, const std::string& op) const
{
    const std::uint64_t h = collection_hash(key.data(), key.size());
    bool full = false;
    const std::uint32_t v = index().find(
        h,
        [&](std::uint32_t slot) {
            if (slot > m_layout.records) {
                corrupt(op, "its index names record " + std::to_string(slot - 1) + ", beyond its " +
                                std::to_string(m_layout.records) + " records");
            }
            const collection_record& rec = record(slot - 1);
            return rec.key_hash == h && rec.key_bytes == key.size() &&
                   __atomic_load_n(&rec.state, __ATOMIC_ACQUIRE) == record_filled &&
                   std::memcmp(key_of(slot - 1), key.data(), key.size()) == 0;
        },
        full);
    if (v != 0) {
        return v - 1;
    }
    if (full) {
        corrupt(op, "its index has no free slot");
    }
    return std::nullopt;
}

void collection_table::remove_now(const std::string& op, std::chrono::steady_clock::time_point deadline)
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
        index().clear();
    }
    __atomic_store_n(&m_ctl->dirty, 0u, __ATOMIC_RELEASE);
    g.unlock();
    m_map->disown();
    (void)unlink_if_same(m_map->loc(), m_map->id());
}

void collection_table::check_control(const std::string& op) const
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
        corrupt(op,
                "its capacity changed from " + std::to_string(m_layout.capacity) + " to " + std::to_string(l.capacity));
    }
}

void collection_table::commit(const std::string& op, collection_edit& edit, std::vector<new_entry>& added)
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
    const process_identity to = trailer_owner(*m_map);
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

void collection_table::fill_record(std::uint32_t r, const new_entry& n) noexcept
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

void collection_table::unlink_record(std::uint32_t r) noexcept
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
                read_at(fd.get(), &t, sizeof t, static_cast<std::size_t>(rec.segment_bytes) - sizeof t, "remove entry",
                        seg) == sizeof t &&
                std::memcmp(t.magic, trailer_magic, sizeof t.magic) == 0 && t.created_ns == rec.created_ns) {
                (void)unlink_if_same(loc, id);
            }
        } catch (...) {
        }
    }
    __atomic_store_n(&record(r).state, record_free, __ATOMIC_RELEASE);
}

void collection_table::recover(const std::string& op)
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
        index().clear();
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

void collection_table::raise_full(const std::string& op, std::size_t wanted) const
{
    raise<out_of_space>(op, name(),
                        std::string("the ") + noun() + " is full: the change needs room for " + std::to_string(wanted) +
                            " entries, and its capacity is " + std::to_string(m_layout.capacity),
                        std::string("remove entries first, or create the ") + noun() +
                            " with a larger capacity (up to " + std::to_string(collection_max_capacity) + ")",
                        errno_code(ENOSPC));
}

void collection_table::corrupt(const std::string& op, const std::string& why) const
{
    raise<format_error>(op, name(), std::string("corrupt ") + noun() + " table: " + why,
                        std::string("something other than ndshm wrote into it; remove it (`ndshm rm`) and create "
                                    "a new ") +
                            noun(),
                        make_error_code(errc::corrupt_control));
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
