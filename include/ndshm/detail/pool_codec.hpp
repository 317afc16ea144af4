/// @file detail/pool_codec.hpp
/// How a pool task's arguments and results travel: cereal's binary archive over memory, shared arrays
/// as their backend and name (attached on the other side, from the worker's cache if it holds them),
/// and the record of the arrays a task names that ndshm::mpi::pool moves between nodes.
#ifndef NDSHM_DETAIL_POOL_CODEC_HPP
#define NDSHM_DETAIL_POOL_CODEC_HPP

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <memory>
#include <sstream>
#include <streambuf>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>

#include "array_cereal.hpp"
#include <cereal/types/utility.hpp>
#include <cereal/types/vector.hpp>

#include "../dtype.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "array_handle.hpp"
#include "array_handoff.hpp"
#include "array_segment.hpp"
#include "config.hpp"
#include "npy.hpp"
#include "pool_worker.hpp"
#include "segment_impl.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

// ---- cereal over memory ---------------------------------------------------------------------------

/// A read-only streambuf over bytes someone else owns (cereal reads through std::istream).
class memory_buf : public std::streambuf {
public:
    explicit memory_buf(std::string_view s)
    {
        char* p = const_cast<char*>(s.data()); // never written: this buffer only reads
        setg(p, p, p + s.size());
    }
};

/// The in-memory encoder: `f(ar)` writes into a fresh archive; returns the bytes.
template <class F>
std::string encode(F&& f)
{
    std::ostringstream os;
    {
        cereal::BinaryOutputArchive ar(os);
        f(ar);
    }
    return std::move(os).str();
}

/// A binary archive that reads bytes someone else owns (a task's arguments, a result).
class archive_reader {
public:
    explicit archive_reader(std::string_view bytes) : m_buf(bytes), m_is(&m_buf), m_ar(m_is) {}
    archive_reader(const archive_reader&) = delete;
    archive_reader& operator=(const archive_reader&) = delete;

    cereal::BinaryInputArchive& archive() noexcept { return m_ar; }

private:
    memory_buf m_buf;
    std::istream m_is;
    cereal::BinaryInputArchive m_ar;
};

// ---- argument and result codecs ---------------------------------------------------------------------

template <class T>
struct is_shared_ndarray : std::false_type {
};
template <class T>
struct is_shared_ndarray<shared_ndarray<T>> : std::true_type {
};

/// Values travel through cereal's binary archive; shared arrays travel as their backend and name, and
/// the receiving side attaches them (a read-only mapping for shared_ndarray<const T>).
template <class D>
struct task_codec {
    static_assert(std::is_default_constructible_v<D>,
                  "ndshm::fork_pool: argument and result types must be default-constructible (and serialisable "
                  "with cereal, or shared_ndarray handles)");
    static void save(cereal::BinaryOutputArchive& ar, const D& v) { ar(v); }
    static D load(cereal::BinaryInputArchive& ar)
    {
        D v{};
        ar(v);
        return v;
    }
};

/// An array a task refers to, and the part of its data the task works on: what ndshm::mpi::pool moves
/// to a rank on another node (which cannot attach the segment by name) and back. fork_pool ignores it.
struct task_array {
    std::shared_ptr<mapping> map;
    dtype type = dtype::float64;
    std::vector<std::size_t> shape;
    bool fortran = false;
    std::size_t data_offset = 0; ///< of the data in the segment
    std::size_t nbytes = 0;      ///< of the whole array's data
    std::size_t first = 0;       ///< the part the task uses: bytes [first, first + bytes) of the data
    std::size_t bytes = 0;
    bool writable = false;  ///< the task may write it (a handle of non-const T)
    bool exclusive = false; ///< no other task of the call writes [first, first + bytes): it may all go back
    long only_for = -1;     ///< >= 0: only the worker of that index uses it (an add_into accumulator)
};

template <class T>
task_array make_task_array(const shared_ndarray<T>& a)
{
    task_array t;
    t.map = array_access::mapping_of(a);
    t.type = dtype_of<std::remove_const_t<T>>;
    t.shape.assign(a.shape().begin(), a.shape().end());
    t.fortran = a.fortran_order();
    t.data_offset = t.map ? static_cast<std::size_t>(reinterpret_cast<const unsigned char*>(a.data()) - t.map->base())
                          : 0;
    t.nbytes = a.size() * sizeof(T);
    t.bytes = t.nbytes;
    t.writable = !std::is_const_v<T>;
    return t;
}

/// While set (on this thread), every shared array that task_codec encodes is noted here; with `keep`,
/// a result array is not handed over by name (its bytes travel instead: ndshm::mpi::pool between nodes).
struct array_recorder {
    std::vector<task_array> arrays;
    bool keep = false;
};

inline array_recorder*& current_array_recorder() noexcept
{
    static thread_local array_recorder* r = nullptr;
    return r;
}

/// While set (on this thread), task_codec asks it for the segment of an array the sender named before
/// attaching the name: ndshm::mpi::pool hands out node-local copies of arrays that live on another node.
class array_resolver {
public:
    virtual ~array_resolver() = default;
    /// The mapping (and its layout in `info`) to use for the sender's segment `dir`/`name` made at
    /// `created`, or null to attach the name.
    virtual std::shared_ptr<mapping> resolve(const std::string& dir, const std::string& name, std::uint64_t created,
                                             npy_info& info) = 0;
};

inline array_resolver*& current_array_resolver() noexcept
{
    static thread_local array_resolver* r = nullptr;
    return r;
}

/// Writes what a receiver needs to attach the segment of `m` (nothing but empty fields for null): its
/// directory, name and identity; with `transfer`, a writable segment this process owns is handed over
/// to the parent (current_worker().parent), which then owns its name and gc record.
NDSHM_DECL void save_array_ref(cereal::BinaryOutputArchive& ar, mapping* m, bool transfer);

/// Throws the error for a handle, passed to a task, that is part of a larger segment `name`.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_partial_segment(const std::string& name);
/// Throws the error for a returned array whose name `name` no longer names the segment the worker made.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_result_replaced(const std::string& name);
/// Throws the serialization_error of a result that cereal could not decode (`what`: its message).
[[noreturn, gnu::cold]] NDSHM_DECL void raise_decode_result(const char* what);

template <class T>
struct task_codec<shared_ndarray<T>> {
    using writable = std::remove_const_t<T>;

    /// `transfer`: the sending process owns the array and hands it to the receiver (a result).
    static void save(cereal::BinaryOutputArchive& ar, const shared_ndarray<T>& a, bool transfer = false)
    {
        const std::shared_ptr<mapping>& m = array_access::mapping_of(a);
        if (m && !whole_array_segment(a)) {
            raise_partial_segment(m->name());
        }
        if (array_recorder* rec = current_array_recorder(); rec != nullptr && m) {
            rec->arrays.push_back(make_task_array(a));
            transfer = transfer && !rec->keep;
        }
        save_array_ref(ar, m.get(), transfer);
    }
    static shared_ndarray<T> load(cereal::BinaryInputArchive& ar)
    {
        std::string dir, name;
        bool moved = false;
        std::uint64_t dev = 0, ino = 0, created = 0;
        ar(dir, name, moved, dev, ino, created);
        if (name.empty()) {
            return {};
        }
        if (array_resolver* r = current_array_resolver(); r != nullptr) {
            npy_info info;
            if (std::shared_ptr<mapping> m = r->resolve(dir, name, created, info)) {
                check_dtype<writable>("attach", name, info.type);
                return array_access::make<T>(std::move(m), info);
            }
        }
        options o;
        o.directory = dir;
        if (!moved) {
            return attach_cached(dir, name, file_id{dev, ino}, created, o);
        }
        // A returned array: take ownership, which needs a writable mapping to update its trailer. Only
        // of the segment the worker handed over: a name unlinked and created again meanwhile is not it.
        shared_ndarray<writable> a = shared_ndarray<writable>::attach(name, o);
        const mapping& m = *array_access::mapping_of(a);
        if (m.id() != file_id{dev, ino} || m.get_trailer() == nullptr || m.get_trailer()->created_ns != created) {
            raise_result_replaced(name);
        }
        take_ownership(*array_access::mapping_of(a));
        return a;
    }

    /// An argument array: from the worker's cache if it holds this very segment, else attached (and
    /// cached, in a forked worker).
    static shared_ndarray<T> attach_cached(const std::string& dir, const std::string& name, file_id id,
                                           std::uint64_t created, const options& o)
    {
        worker_mapping_cache& c = worker_mappings();
        if (!c.enabled || !id.known()) {
            if constexpr (std::is_const_v<T>) {
                // In the calling process (a pool without workers), a read-only argument shares the
                // caller's writable mapping instead of mapping the segment again and faulting every
                // page in on every task (the handle is read-only either way).
                segment_layout layout;
                if (auto r = id.known() ? attached_regions().find(id, true, SIZE_MAX, layout) : nullptr) {
                    auto m = mapping_over(location{dir, name}, std::move(r), false, id, layout);
                    const trailer* t = m->get_trailer();
                    if (layout.kind == kind_array && t != nullptr && t->created_ns == created) {
                        check_dtype<writable>("attach", name, layout.info.type);
                        return array_access::make<T>(m, layout.info);
                    }
                }
            }
            return shared_ndarray<T>::attach(name, o);
        }
        for (auto& e : c.entries) {
            if (e.id == id && e.created_ns == created && e.name == name && e.dir == dir &&
                (e.map->writable() || std::is_const_v<T>)) {
                // The header is read again (a queue's recycled segment may hold another shape now).
                const npy_info info = parse_npy(e.map->base(), e.map->size(), name, e.map->size());
                const trailer* t = find_trailer(*e.map, info, "attach");
                if (t != nullptr && t->kind == kind_array && t->created_ns == created) {
                    check_dtype<writable>("attach", name, info.type);
                    e.used = ++c.clock;
                    return array_access::make<T>(e.map, info);
                }
            }
        }
        shared_ndarray<T> a = shared_ndarray<T>::attach(name, o);
        const std::shared_ptr<mapping>& m = array_access::mapping_of(a);
        const trailer* t = m->get_trailer();
        if (m->id() == id && t != nullptr && t->created_ns == created) {
            c.entries.erase(
                std::remove_if(c.entries.begin(), c.entries.end(),
                               [&](const worker_mapping_cache::entry& e) { return e.name == name && e.dir == dir; }),
                c.entries.end());
            if (c.entries.size() >= worker_mapping_cache::limit) {
                c.entries.erase(std::min_element(c.entries.begin(), c.entries.end(),
                                                 [](const worker_mapping_cache::entry& x,
                                                    const worker_mapping_cache::entry& y) { return x.used < y.used; }));
            }
            c.entries.push_back({dir, name, id, created, m, ++c.clock});
        }
        return a;
    }
};

template <class D, class A>
void save_arg(cereal::BinaryOutputArchive& ar, A&& a)
{
    const D& d = std::forward<A>(a); // converts (for example shared_ndarray<T> to shared_ndarray<const T>)
    task_codec<D>::save(ar, d);
}

/// Encodes call arguments as the parameter types P of the function that receives them.
template <class... P, class... A>
void save_args(cereal::BinaryOutputArchive& ar, A&&... args)
{
    static_assert(sizeof...(P) == sizeof...(A), "ndshm::fork_pool: pass one argument per parameter of the function");
    (save_arg<std::decay_t<P>>(ar, std::forward<A>(args)), ...);
    (void)ar;
}

template <class... P>
std::tuple<std::decay_t<P>...> load_args(cereal::BinaryInputArchive& ar)
{
    // Braced initialisation evaluates left to right, the order save_args wrote them.
    return std::tuple<std::decay_t<P>...>{task_codec<std::decay_t<P>>::load(ar)...};
}

template <class R>
void save_result(cereal::BinaryOutputArchive& ar, R& r)
{
    if constexpr (is_shared_ndarray<R>::value) {
        task_codec<R>::save(ar, r, true);
    } else {
        task_codec<R>::save(ar, r);
    }
}

template <class R>
std::string encode_result(R& r)
{
    return encode([&](cereal::BinaryOutputArchive& ar) { save_result(ar, r); });
}

template <class R>
R decode_result(std::string_view bytes)
{
    try {
        archive_reader in(bytes);
        return task_codec<R>::load(in.archive());
    } catch (const cereal::Exception& e) {
        raise_decode_result(e.what());
    }
}

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void save_array_ref(cereal::BinaryOutputArchive& ar, mapping* m, bool transfer)
{
    std::string dir, name;
    bool moved = false;
    std::uint64_t dev = 0, ino = 0, created = 0; // identity: the receiver takes over this segment only
    if (m != nullptr) {
        dir = m->loc().dir;
        name = m->name();
        dev = m->id().dev;
        ino = m->id().ino;
        created = m->get_trailer() != nullptr ? m->get_trailer()->created_ns : 0;
        if (transfer && m->writable() && m->get_trailer() != nullptr && m->owned()) {
            // The parent owns it from now on: its name and its gc record.
            set_trailer_owner(*m->get_trailer(), current_worker().parent);
            m->disown();
            moved = true;
        }
    }
    ar(dir, name, moved, dev, ino, created);
}

void raise_partial_segment(const std::string& name)
{
    raise<error>("pass to a pool task", name,
                 "the handle is part of a larger segment (a composite object's member or a channel slot); "
                 "only whole arrays travel by name",
                 "pass a copy (shared_ndarray<T>::from_array(a.view())) or the whole object's name",
                 errno_code(EINVAL));
}

void raise_result_replaced(const std::string& name)
{
    raise<format_error>("take over a worker's result", name,
                        "the name no longer names the segment the worker returned (it was removed and "
                        "created again meanwhile); this process does not take it over",
                        "do not remove a task's result before the call returns", errno_code(ESTALE));
}

void raise_decode_result(const char* what)
{
    raise<serialization_error>("decode a task's result", "", std::string("cereal: ") + what,
                               "check that the result type's serialize() reads what it writes",
                               make_error_code(errc::serialization));
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
