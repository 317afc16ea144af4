/// @file detail/collection_impl.hpp
/// The state behind `shared_dict` (dict.hpp) and `shared_list` (list.hpp) handles: the container's
/// table (collection_table.hpp) and its entries, each an array segment of its own: made (copies of
/// arrays and expressions, or arrays handed over), attached (typed or dtype-erased, with retries when a
/// change replaced them meanwhile) and persisted; and the creation and checked opening of a container.
///
/// shared_ndarray, shared_tensor and any_ndarray are only declared here (array_handle.hpp): what uses
/// them depends on a template parameter, and is compiled where dict.hpp and list.hpp include their
/// headers.
#ifndef NDSHM_DETAIL_COLLECTION_IMPL_HPP
#define NDSHM_DETAIL_COLLECTION_IMPL_HPP

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../dtype.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "array_handle.hpp"
#include "collection_format.hpp"
#include "collection_table.hpp"
#include "config.hpp"
#include "npy.hpp"
#include "segment_impl.hpp"
#include "sync.hpp"
#include "trailer.hpp"
#include "xtensor_compat.hpp"

namespace ndshm::detail {

template <class V>
inline constexpr bool always_false = false;

/// A container's table and its entries in this process.
class collection_impl : public collection_table {
public:
    NDSHM_DECL collection_impl(std::shared_ptr<mapping> m, collection_control* ctl, const collection_layout& l,
                               std::uint32_t kind, const options& opt);

    const options& entry_options() const noexcept { return m_entry_opt; }

    // ---- attaching entries (outside the lock, or under it) ----

    /// A mapping of entry `e`'s segment and its array, or null if the segment is gone or is not the
    /// one the record names any more (the entry was replaced or removed meanwhile). A segment this
    /// process maps already is shared without a system call: the record knows its identity.
    NDSHM_DECL std::shared_ptr<mapping> attach_entry(const entry_ref& e, bool writable, npy_info& info,
                                                     const std::string& op) const;

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

    /// A dtype-erased handle (any_ndarray) of entry `e`, writable, or an empty handle if the segment is
    /// gone. `attach_any` is ndshm::attach_any (any_ndarray.hpp), passed in by dict.hpp and list.hpp so
    /// that this header needs any_ndarray only as a declaration.
    template <class AttachAny>
    auto attach_any_entry(const entry_ref& e, AttachAny&& attach_any, const std::string& op) const
        -> decltype(attach_any(e.name, std::declval<const options&>()))
    {
        options o = m_entry_opt;
        decltype(attach_any(e.name, o)) a;
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
            raise_recorded_dtype(op, e, a.dtype());
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
    // ---- new entries ----

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
        check_adoptable(array_access::mapping_of(a), a.data(), a.nbytes(), op);
        return entry_of(std::move(key), a);
    }

    /// For pop, in a plan (see change): takes the entry in record `r` at position `pos` out of the order
    /// and hands its segment to the caller, who then owns it. Returns its handle; an empty one if the
    /// segment is gone, and the entry then just leaves (the caller says why).
    /// @throws dtype_mismatch naming both types (nothing planned)
    template <class T>
    shared_ndarray<T> take_entry(collection_edit& edit, std::uint32_t r, std::size_t pos, const std::string& op) const
    {
        const entry_ref e = read_entry(r, pos, op);
        shared_ndarray<T> out = attach_typed<T>(e, op);
        edit.order.erase(edit.order.begin() + static_cast<std::ptrdiff_t>(pos));
        if (!out) { // its segment is gone: the entry goes, and the caller learns why
            edit.removed.push_back(r);
            return out;
        }
        edit.handed = r;
        edit.handed_map = array_access::mapping_of(out);
        return out;
    }

    /// Marks the container persisted, and every entry in it: no handle unlinks them any more and gc
    /// keeps them, until remove() (on a handle opened by name) removes them all.
    NDSHM_DECL void persist(const std::string& op);

    /// "'key'" for a dict's entry, "at position i" for a list's.
    NDSHM_DECL std::string describe(const entry_ref& e) const;

    template <class T>
    void check_entry_dtype(const entry_ref& e, const std::string& op) const
    {
        constexpr ndshm::dtype want = dtype_of<T>;
        if (e.type != want) {
            raise_entry_dtype(e, want, op);
        }
    }

    [[noreturn]] NDSHM_DECL void raise_vanished(const std::string& op, const entry_ref& e) const;

    [[noreturn]] NDSHM_DECL void raise_empty_value(const std::string& op) const;

    /// Throws dtype_mismatch: entry `e` holds another dtype than `want`, the one asked for.
    [[noreturn]] NDSHM_DECL void raise_entry_dtype(const entry_ref& e, ndshm::dtype want, const std::string& op) const;

    /// Throws format_error: entry `e`'s segment holds `holds`, not the dtype its record names.
    [[noreturn]] NDSHM_DECL void raise_recorded_dtype(const std::string& op, const entry_ref& e,
                                                      ndshm::dtype holds) const;

    /// Refuses, with an error naming why, an array that adopted_entry cannot take over: `am` its mapping,
    /// `data` and `nbytes` its handle's elements.
    NDSHM_DECL void check_adoptable(const std::shared_ptr<mapping>& am, const void* data, std::size_t nbytes,
                                    const std::string& op) const;

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

    options m_entry_opt;
};

/// Creates the segment of an empty container of `kind` for `capacity` entries.
NDSHM_DECL std::shared_ptr<collection_impl> create_collection(std::uint32_t kind, std::size_t capacity,
                                                              const options& opt, const std::string& op);

/// Opens the container `name` of `kind`, checking its header and control block.
NDSHM_DECL std::shared_ptr<collection_impl> open_collection(std::uint32_t kind, const std::string& name,
                                                            const options& opt, const std::string& op);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

collection_impl::collection_impl(std::shared_ptr<mapping> m, collection_control* ctl, const collection_layout& l,
                                 std::uint32_t kind, const options& opt)
    : collection_table(std::move(m), ctl, l, kind)
{
    m_entry_opt.directory = container_map()->loc().dir;
    m_entry_opt.mode = __atomic_load_n(&ctl->entry_mode, __ATOMIC_RELAXED);
    m_entry_opt.populate = opt.populate;
    m_entry_opt.ready_timeout = std::chrono::milliseconds(0); // entries are published before they enter
}

std::shared_ptr<mapping> collection_impl::attach_entry(const entry_ref& e, bool writable, npy_info& info,
                                                       const std::string& op) const
{
    const location loc{container_map()->loc().dir, e.name};
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
        raise_recorded_dtype(op, e, info.type);
    }
    return m;
}

void collection_impl::persist(const std::string& op)
{
    guard g(*this, op);
    container_map()->persist();
    for (const entry_ref& e : read_all(op)) {
        npy_info info;
        if (auto m = attach_entry(e, true, info, op)) {
            fetch_or(m->get_trailer()->flags, flag_persisted);
        }
    }
}

std::string collection_impl::describe(const entry_ref& e) const
{
    return kind() == kind_dict ? "'" + printable_key(e.key) + "'" : "at position " + std::to_string(e.position);
}

void collection_impl::raise_vanished(const std::string& op, const entry_ref& e) const
{
    raise<not_found>(op, name(),
                     "the segment of entry " + describe(e) + " ('" + e.name + "') is gone: something outside the " +
                         noun() + " removed it",
                     "erase or replace that entry", errno_code(ENOENT));
}

void collection_impl::raise_empty_value(const std::string& op) const
{
    raise<error>(op, name(), "the array handle given is empty", "pass a handle that holds an array",
                 make_error_code(errc::invalid_argument));
}

void collection_impl::raise_entry_dtype(const entry_ref& e, ndshm::dtype want, const std::string& op) const
{
    raise<dtype_mismatch>(op, name(),
                          "entry " + describe(e) + " holds " + dtype_name(e.type) + " ('" + dtype_descr(e.type) +
                              "'), not " + dtype_name(want) + " ('" + dtype_descr(want) + "') as requested",
                          std::string("ask for the element type for ") + dtype_name(e.type) +
                              ", or take it dtype-erased as an any_ndarray",
                          make_error_code(errc::dtype_mismatch));
}

void collection_impl::raise_recorded_dtype(const std::string& op, const entry_ref& e, ndshm::dtype holds) const
{
    corrupt(op, "entry " + describe(e) + " is recorded as " + dtype_name(e.type) + ", but its segment '" + e.name +
                    "' holds " + dtype_name(holds));
}

void collection_impl::check_adoptable(const std::shared_ptr<mapping>& am, const void* data, std::size_t nbytes,
                                      const std::string& op) const
{
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
    const bool whole = static_cast<const unsigned char*>(data) == am->base() + t->data_offset &&
                       nbytes == t->data_bytes &&
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
    if (am->loc().dir != container_map()->loc().dir) {
        refuse("the array lives in another backend ('" + am->loc().path() + "') than the " + noun() + " ('" +
                   container_map()->loc().path() + "')",
               "create it with the same options::directory (or NDSHM_DIR), or insert a copy");
    }
    if (am->name().size() >= collection_name_room) {
        refuse("its name is longer than " + std::to_string(collection_name_room - 1) + " characters",
               "give it a shorter name (generated names have 30), or insert a copy");
    }
}

std::shared_ptr<collection_impl> create_collection(std::uint32_t kind, std::size_t capacity, const options& opt,
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

std::shared_ptr<collection_impl> open_collection(std::uint32_t kind, const std::string& name, const options& opt,
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

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
