/// @file detail/array_core.hpp
/// What every array handle does that does not depend on its element type or rank: creating and
/// publishing its segment, a dynamic-rank handle's shape and strides, and the errors of pinning and of
/// a rank that does not fit. Compiled once with NDSHM_SEPARATE_COMPILATION (detail/config.hpp).
#ifndef NDSHM_DETAIL_ARRAY_CORE_HPP
#define NDSHM_DETAIL_ARRAY_CORE_HPP

#include <cerrno>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#ifndef _WIN32
#include <sys/resource.h>
#endif

#include "../dtype.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "array_index.hpp"
#include "array_segment.hpp"
#include "config.hpp"
#include "npy.hpp"

namespace ndshm::detail {

/// Turns a failed mlock (op "pin"), munlock ("unpin") or msync ("flush") of `name` into the ndshm
/// exception that says what to do: only mlock's EPERM, ENOMEM and EAGAIN are about the limit of locked
/// memory; munlock's and msync's errors name the call and its errno.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_pin_error(const std::string& op, const std::string& name, int err,
                                                        std::size_t bytes);

/// What the factory `op` of every handle type does first: a new segment holding a zero-filled array of
/// `rank` extents at `shape`, in C or (if `fortran`) Fortran order; see create_array_segment. Not yet
/// published.
NDSHM_DECL std::shared_ptr<mapping> create_handle_segment(const options& opt, dtype t, const std::size_t* shape,
                                                          std::size_t rank, bool fortran, const char* op,
                                                          npy_info& info);

/// What create() of every handle type does before it builds the handle: create_handle_segment, then
/// publish_array.
NDSHM_DECL std::shared_ptr<mapping> create_published_array(const options& opt, dtype t, const std::size_t* shape,
                                                           std::size_t rank, bool fortran, npy_info& info);

/// Sets `strides` to the distances in elements between neighbours along each dimension of an array of
/// `shape` in C or (if `fortran`) Fortran order; `Extents` is a std::vector (dynamic rank) or a
/// std::array (fixed rank) of extents.
template <class Extents>
void fill_contiguous_strides(const Extents& shape, bool fortran, Extents& strides)
{
    strides = shape;
    const std::size_t n = shape.size();
    std::size_t step = 1;
    for (std::size_t j = 0; j < n; ++j) {
        const std::size_t k = fortran ? j : n - 1 - j;
        strides[k] = step;
        step *= shape[k];
    }
}

/// fill_contiguous_strides for a dynamic-rank handle, compiled once.
NDSHM_DECL void contiguous_strides(const std::vector<std::size_t>& shape, bool fortran,
                                   std::vector<std::size_t>& strides);

/// Sets a dynamic-rank handle's `shape` to `extents` and its `strides` as contiguous_strides does.
NDSHM_DECL void dynamic_layout(const std::vector<std::size_t>& extents, bool fortran, std::vector<std::size_t>& shape,
                               std::vector<std::size_t>& strides);

/// The name an empty handle reports: the empty string.
NDSHM_DECL const std::string& no_name() noexcept;

/// A fixed-rank handle of rank `rank` refusing the segment `name`, which holds an array of `shape`.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_segment_rank(const std::string& name,
                                                           const std::vector<std::size_t>& shape, std::size_t rank);

/// from_array of a fixed-rank handle of rank `rank` refusing an expression of `dims` dimensions.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_expression_rank(const std::string& name, std::size_t dims,
                                                              std::size_t rank);

/// resized() refusing `new_shape`, of another rank than the array's `shape`.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_resized_rank(const std::string& name,
                                                           const std::vector<std::size_t>& new_shape,
                                                           const std::vector<std::size_t>& shape);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void raise_pin_error(const std::string& op, const std::string& name, int err, std::size_t bytes)
{
#ifdef _WIN32
    const std::string limit = "the process's minimum working set size";
    const std::string fix = "raise the minimum working set size (SetProcessWorkingSetSize) or pin less";
#else
    struct rlimit lim {};
    const bool known = ::getrlimit(RLIMIT_MEMLOCK, &lim) == 0;
    const std::string limit = !known                          ? std::string("unknown")
                              : lim.rlim_cur == RLIM_INFINITY ? std::string("unlimited")
                                                              : human_bytes(lim.rlim_cur);
    const std::string fix = "raise the limit of locked memory (ulimit -l, LimitMEMLOCK= in a systemd unit, "
                            "docker run --ulimit memlock=-1), or grant CAP_IPC_LOCK";
#endif
    if (op == "pin" && err == EPERM) {
        raise<permission_denied>(
            op, name, "mlock failed: not permitted (the limit of locked memory, RLIMIT_MEMLOCK, is " + limit + ")", fix,
            errno_code(err));
    }
    if (op == "pin" && (err == ENOMEM || err == EAGAIN)) {
        raise<out_of_space>(op, name,
                            "mlock of " + human_bytes(bytes) +
                                " failed: it exceeds the limit of locked memory "
                                "(RLIMIT_MEMLOCK is " +
                                limit + "), or the pages could not be locked",
                            fix, errno_code(err));
    }
    raise_errno(op, name, err, op == "flush" ? "msync" : (op == "unpin" ? "munlock" : "mlock"));
}

std::shared_ptr<mapping> create_handle_segment(const options& opt, dtype t, const std::size_t* shape, std::size_t rank,
                                               bool fortran, const char* op, npy_info& info)
{
    return create_array_segment(opt, t, std::vector<std::size_t>(shape, shape + rank), fortran, op, info);
}

std::shared_ptr<mapping> create_published_array(const options& opt, dtype t, const std::size_t* shape, std::size_t rank,
                                                bool fortran, npy_info& info)
{
    auto m = create_handle_segment(opt, t, shape, rank, fortran, "create", info);
    publish_array(*m, info);
    return m;
}

void contiguous_strides(const std::vector<std::size_t>& shape, bool fortran, std::vector<std::size_t>& strides)
{
    fill_contiguous_strides(shape, fortran, strides);
}

void dynamic_layout(const std::vector<std::size_t>& extents, bool fortran, std::vector<std::size_t>& shape,
                    std::vector<std::size_t>& strides)
{
    shape = extents;
    contiguous_strides(shape, fortran, strides);
}

const std::string& no_name() noexcept
{
    static const std::string none;
    return none;
}

void raise_segment_rank(const std::string& name, const std::vector<std::size_t>& shape, std::size_t rank)
{
    raise<error>("attach", name,
                 "the segment holds an array of rank " + std::to_string(shape.size()) + " " + shape_string(shape) +
                     ", not of rank " + std::to_string(rank) + " as the handle requires",
                 "use shared_tensor<T, " + std::to_string(shape.size()) +
                     "> or shared_ndarray<T>, which takes any rank",
                 make_error_code(errc::rank_mismatch));
}

void raise_expression_rank(const std::string& name, std::size_t dims, std::size_t rank)
{
    raise<error>("from_array", name,
                 "the expression has " + std::to_string(dims) + " dimensions, the handle " + std::to_string(rank),
                 "use a shared_tensor of the expression's rank, or shared_ndarray",
                 make_error_code(errc::rank_mismatch));
}

void raise_resized_rank(const std::string& name, const std::vector<std::size_t>& new_shape,
                        const std::vector<std::size_t>& shape)
{
    raise<error>("resized", name,
                 "the new shape " + shape_string(new_shape) + " has another rank than " + shape_string(shape),
                 "keep the rank; reshape() changes it in place", make_error_code(errc::rank_mismatch));
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
