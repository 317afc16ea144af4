/// @file detail/mpi_pool_arrays.hpp
/// The arrays of an ndshm::mpi::pool's tasks between nodes: what a peer says of an array checked before
/// it is trusted with memory, node-local segments for the copies, the runs of bytes a task changed,
/// and the lookup from the sender's name of a segment to this process's mapping of it.
#ifndef NDSHM_DETAIL_MPI_POOL_ARRAYS_HPP
#define NDSHM_DETAIL_MPI_POOL_ARRAYS_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../dtype.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "array_handle.hpp"
#include "mpi_calls.hpp"
#include "npy.hpp"
#include "pool_impl.hpp"
#include "segment_impl.hpp"

namespace ndshm::mpi::detail {

/// Runs of whole elements (`unit` bytes) that differ between `now` and `before` (n bytes each), as
/// (offset, length) pairs: only what a task changed goes back, so tasks that write different elements
/// of one array do not undo each other's writes.
inline std::vector<std::uint64_t> changed_runs(const unsigned char* now, const unsigned char* before, std::size_t n,
                                               std::size_t unit)
{
    std::vector<std::uint64_t> runs;
    unit = std::max<std::size_t>(unit, 1);
    std::size_t i = 0;
    while (i < n) {
        while (i + 256 <= n && std::memcmp(now + i, before + i, 256) == 0) {
            i += 256;
        }
        while (i < n && std::memcmp(now + i, before + i, std::min(unit, n - i)) == 0) {
            i += unit;
        }
        if (i >= n) {
            break;
        }
        const std::size_t start = i;
        while (i < n && std::memcmp(now + i, before + i, std::min(unit, n - i)) != 0) {
            i += unit;
        }
        runs.push_back(start);
        runs.push_back(std::min(i, n) - start);
    }
    return runs;
}

inline std::vector<std::size_t> to_sizes(const std::vector<std::uint64_t>& v)
{
    return std::vector<std::size_t>(v.begin(), v.end());
}

/// Checks what a peer says about an array before it is trusted with memory.
inline void check_layout(std::uint8_t type, const std::vector<std::uint64_t>& shape, std::uint64_t nbytes,
                         std::uint64_t first, std::uint64_t bytes, const std::string& op)
{
    std::uint64_t n = itemsize(static_cast<dtype>(type));
    bool ok = n != 0 && type <= static_cast<std::uint8_t>(dtype::complex128);
    for (const std::uint64_t d : shape) {
        ok = ok && (d == 0 || n <= UINT64_MAX / d);
        n *= d;
    }
    if (!ok || n != nbytes || first > nbytes || bytes > nbytes - first) {
        core::raise<error>(op, "", "a pool message describes an array that does not add up",
                           "every rank of the pool must run the same executable", make_error_code(errc::mpi_failure));
    }
}

/// A new segment of an array (owned by this process), published.
inline std::shared_ptr<core::mapping> make_segment(std::uint8_t type, const std::vector<std::uint64_t>& shape,
                                                   bool fortran, const std::string& op, core::npy_info& info)
{
    auto m = core::create_array_segment(options{}, static_cast<dtype>(type), to_sizes(shape), fortran, op, info);
    m->publish();
    core::remember_layout(*m, info, core::kind_array);
    return m;
}

/// The sender's name for a segment: what task_codec writes, and what a resolver is asked about.
struct segment_key {
    std::string dir, name;
    std::uint64_t created = 0;
    static segment_key of(const core::mapping& m)
    {
        return {m.loc().dir, m.name(), m.get_trailer() != nullptr ? m.get_trailer()->created_ns : 0};
    }
    bool operator==(const segment_key& o) const { return created == o.created && name == o.name && dir == o.dir; }
};

/// Sets what a message (wire_array, result_array) says of task array `a`'s segment: the sender's name
/// for it and the array's layout.
template <class X>
void describe_segment(X& x, const core::task_array& a)
{
    const segment_key k = segment_key::of(*a.map);
    x.dir = k.dir;
    x.name = k.name;
    x.created = k.created;
    x.type = static_cast<std::uint8_t>(a.type);
    x.shape.assign(a.shape.begin(), a.shape.end());
    x.fortran = a.fortran;
    x.nbytes = a.nbytes;
}

/// Arrays with segments of their own: a lookup from the sender's name to a mapping of this process.
class segment_table : public core::array_resolver {
public:
    struct entry {
        segment_key key;
        std::shared_ptr<core::mapping> map;
        core::npy_info info;
    };
    std::vector<entry> entries;

    std::shared_ptr<core::mapping> resolve(const std::string& dir, const std::string& name, std::uint64_t created,
                                           core::npy_info& info) override
    {
        const segment_key k{dir, name, created};
        for (const entry& e : entries) {
            if (e.key == k) {
                info = e.info;
                return e.map;
            }
        }
        return nullptr;
    }
};

/// Sets a resolver for a scope.
class resolver_scope {
public:
    explicit resolver_scope(core::array_resolver* r) noexcept
        : m_saved(std::exchange(core::current_array_resolver(), r))
    {
    }
    resolver_scope(const resolver_scope&) = delete;
    resolver_scope& operator=(const resolver_scope&) = delete;
    ~resolver_scope() { core::current_array_resolver() = m_saved; }

private:
    core::array_resolver* m_saved;
};

inline core::npy_info info_of(const core::task_array& t)
{
    core::npy_info info;
    info.type = t.type;
    info.shape = t.shape;
    info.fortran_order = t.fortran;
    info.data_offset = t.data_offset;
    info.size = itemsize(t.type) == 0 ? 0 : t.nbytes / itemsize(t.type);
    info.nbytes = t.nbytes;
    return info;
}

} // namespace ndshm::mpi::detail

#endif
