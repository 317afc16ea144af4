/// @file detail/mpi_agree.hpp
/// How the ranks of a collective agree: a failure on one rank is reported on every rank (the ranks
/// that failed throw their own exception, the others one of the same class that quotes it, so no rank
/// is left waiting in a collective), and the arguments that must be the same on every rank are
/// compared by a fingerprint (one MPI_Allreduce when they agree).
#ifndef NDSHM_DETAIL_MPI_AGREE_HPP
#define NDSHM_DETAIL_MPI_AGREE_HPP

#include <climits>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <system_error>
#include <vector>

#include "../error.hpp"
#include "mpi_calls.hpp"

namespace ndshm::mpi::detail {

/// The exception classes that travel between ranks.
enum class error_kind : int {
    error,
    not_found,
    already_exists,
    permission_denied,
    out_of_space,
    dtype_mismatch,
    format_error,
    serialization_error,
    other,
};

/// What a rank's exception was: its class, its code (if ndshm or errno) and its message.
struct failure {
    error_kind kind = error_kind::other;
    int category = 0; ///< 0: no code that travels, 1: std::generic_category(), 2: ndshm::error_category()
    int value = 0;
    std::string what;
};

inline void set_code(failure& f, const error& e)
{
    f.what = e.what();
    if (e.code().category() == std::generic_category()) {
        f.category = 1;
    } else if (e.code().category() == error_category()) {
        f.category = 2;
    }
    f.value = e.code().value();
}

inline failure describe(const std::exception_ptr& p)
{
    failure f;
    try {
        std::rethrow_exception(p);
    } catch (const not_found& e) {
        f.kind = error_kind::not_found;
        set_code(f, e);
    } catch (const already_exists& e) {
        f.kind = error_kind::already_exists;
        set_code(f, e);
    } catch (const permission_denied& e) {
        f.kind = error_kind::permission_denied;
        set_code(f, e);
    } catch (const out_of_space& e) {
        f.kind = error_kind::out_of_space;
        set_code(f, e);
    } catch (const dtype_mismatch& e) {
        f.kind = error_kind::dtype_mismatch;
        set_code(f, e);
    } catch (const format_error& e) {
        f.kind = error_kind::format_error;
        set_code(f, e);
    } catch (const serialization_error& e) {
        f.kind = error_kind::serialization_error;
        set_code(f, e);
    } catch (const error& e) {
        f.kind = error_kind::error;
        set_code(f, e);
    } catch (const std::exception& e) {
        f.what = e.what();
    } catch (...) {
        f.what = "an exception that is not a std::exception";
    }
    return f;
}

/// Throws, on a rank that did not fail, the exception of rank `rank`'s class quoting its message.
[[noreturn]] inline void raise_remote(const failure& f, int rank, const std::string& op, const std::string& name)
{
    std::string what = f.what;
    if (what.rfind("ndshm: ", 0) == 0) {
        what.erase(0, 7);
    }
    const std::string cause = "rank " + std::to_string(rank) + " failed: " + what;
    const std::error_code code = f.category == 1   ? std::error_code(f.value, std::generic_category())
                                 : f.category == 2 ? std::error_code(f.value, error_category())
                                                   : make_error_code(errc::mpi_failure);
    switch (f.kind) {
    case error_kind::not_found:
        core::raise<not_found>(op, name, cause, "", code);
    case error_kind::already_exists:
        core::raise<already_exists>(op, name, cause, "", code);
    case error_kind::permission_denied:
        core::raise<permission_denied>(op, name, cause, "", code);
    case error_kind::out_of_space:
        core::raise<out_of_space>(op, name, cause, "", code);
    case error_kind::dtype_mismatch:
        core::raise<dtype_mismatch>(op, name, cause, "", code);
    case error_kind::format_error:
        core::raise<format_error>(op, name, cause, "", code);
    case error_kind::serialization_error:
        core::raise<serialization_error>(op, name, cause, "", code);
    case error_kind::error:
    case error_kind::other:
        break;
    }
    core::raise<error>(op, name, cause, "", code);
}

/// Every rank of `c` learns whether any rank failed (`local` set). If one did, every rank throws: the
/// ranks that failed their own exception, the others one of the same class that quotes the lowest
/// failed rank's message. Costs one MPI_Allreduce of an int when nothing failed.
inline void agree(MPI_Comm c, int rank, const std::exception_ptr& local, const std::string& op, const std::string& name)
{
    const int mine = local ? rank : INT_MAX;
    int first = INT_MAX;
    try {
        check(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c), "MPI_Allreduce", op, name);
        if (first == INT_MAX) {
            return;
        }
        failure f;
        if (rank == first) {
            f = describe(local);
        }
        int head[3] = {static_cast<int>(f.kind), f.category, f.value};
        check(MPI_Bcast(head, 3, MPI_INT, first, c), "MPI_Bcast", op, name);
        f.kind = static_cast<error_kind>(head[0]);
        f.category = head[1];
        f.value = head[2];
        bcast_string(f.what, first, c, op, name);
        if (!local) {
            raise_remote(f, first, op, name);
        }
    } catch (const error&) {
        if (!local) {
            throw;
        }
    }
    std::rethrow_exception(local);
}

/// FNV-1a over 64-bit words: what a rank passed to a collective, compared across ranks.
class fingerprint {
public:
    fingerprint& add(std::uint64_t v) noexcept
    {
        for (int i = 0; i < 8; ++i) {
            m_h ^= (v >> (8 * i)) & 0xffu;
            m_h *= 1099511628211ull;
        }
        return *this;
    }
    fingerprint& add(const std::string& s) noexcept
    {
        add(s.size());
        for (const char c : s) {
            m_h ^= static_cast<unsigned char>(c);
            m_h *= 1099511628211ull;
        }
        return *this;
    }
    template <class S>
    fingerprint& add_shape(const S& shape) noexcept
    {
        add(shape.size());
        for (const auto d : shape) {
            add(static_cast<std::uint64_t>(d));
        }
        return *this;
    }
    std::uint64_t value() const noexcept { return m_h; }

private:
    std::uint64_t m_h = 14695981039346656037ull;
};

/// Throws the same ndshm::error on every rank of `c` unless every rank passed the same `fp`.
/// `mine` says in words what this rank passed, `about` what is compared. One MPI_Allreduce of two
/// 64-bit words when the ranks agree.
inline void check_same(MPI_Comm c, int size, std::uint64_t fp, const std::string& mine, const std::string& about,
                       const std::string& op, const std::string& name)
{
    std::uint64_t in[2] = {fp, ~fp};
    std::uint64_t out[2] = {0, 0};
    check(MPI_Allreduce(in, out, 2, MPI_UINT64_T, MPI_MAX, c), "MPI_Allreduce", op, name);
    if (out[0] == ~out[1]) { // the largest and the smallest value agree
        return;
    }
    // The ranks disagree: every rank learns who differs from rank 0, and what each of the two passed.
    std::vector<std::uint64_t> all(static_cast<std::size_t>(size));
    check(MPI_Allgather(&fp, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, c), "MPI_Allgather", op, name);
    int other = 0;
    std::string others;
    int listed = 0;
    for (std::size_t r = 1; r < all.size(); ++r) {
        if (all[r] != all[0]) {
            other = other == 0 ? static_cast<int>(r) : other;
            if (listed++ == 8) {
                others += ", ...";
                break;
            }
            others += (others.empty() ? "" : ", ") + std::to_string(r);
        }
    }
    std::string first = mine;
    bcast_string(first, 0, c, op, name);
    std::string second = mine;
    bcast_string(second, other, c, op, name);
    core::raise<error>(op, name,
                       "the ranks disagree about " + about + ": rank 0 passed " + first + ", rank " +
                           std::to_string(other) + " passed " + second + " (rank(s) " + others + " differ from rank 0)",
                       "a collective call needs the same arguments on every rank of the communicator",
                       make_error_code(errc::invalid_argument));
}

} // namespace ndshm::mpi::detail

#endif
