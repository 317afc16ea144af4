// What the two halves of the Python module share: the C++ handle behind every NumPy array the module
// returns, the mapping between NumPy dtypes and ndshm's, and waiting with the GIL released.
//
// The module is a thin layer over ndshm's public C++ API: an array from ndshm.create or ndshm.attach is
// a numpy.ndarray over the segment's mapping, and its base is a `handle` holding the shared_ndarray<T>
// (or the channel slot) that keeps the mapping alive and owns the name exactly as in C++.
#ifndef NDSHM_PYTHON_NDSHM_PYTHON_HPP
#define NDSHM_PYTHON_NDSHM_PYTHON_HPP

#include <ndshm/lock.hpp>
#include <ndshm/ndshm.hpp>
#include <ndshm/queue.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ndshm::python {

namespace py = pybind11;

class channel_base;

/// The C++ side of NumPy arrays over a mapping: every array the module returns has one as its base
/// (Python class ndshm.Handle). It keeps the mapping alive while any array over it exists, and owns
/// the segment's name as the C++ handle it holds does: the creating process's last handle unlinks it.
class handle {
public:
    handle(const handle&) = delete;
    handle& operator=(const handle&) = delete;
    virtual ~handle() = default;

    const std::string& name() const noexcept { return m_name; }
    ndshm::dtype dtype() const noexcept { return m_dtype; }
    const shape_type& shape() const noexcept { return m_shape; }
    bool fortran_order() const noexcept { return m_fortran; }
    bool read_only() const noexcept { return m_read_only; }
    void* data() const noexcept { return m_data; }
    std::size_t nbytes() const noexcept { return m_nbytes; }

    /// "array" (create, from_array, attach, a queue's pop), "loan" (a channel slot being written) or
    /// "received" (a channel slot being read).
    virtual const char* kind() const noexcept = 0;
    /// Hands the name over, like shared_ndarray::persist. Only whole arrays can.
    virtual void persist();
    /// Pushes the array into `q`, waiting at most `timeout`; false if the queue stayed full.
    virtual bool push_to(ndshm::array_queue& q, std::chrono::nanoseconds timeout);
    /// The segment's lock (ndshm::array_lock), which keeps the mapping alive.
    virtual std::unique_ptr<ndshm::array_lock> make_lock() const;
    /// Returns a received channel slot to its channel now.
    virtual void release() noexcept {}
    /// The slot index of a loan or a received slot.
    virtual std::size_t index() const noexcept { return 0; }
    /// The channel a loan came from, to check a publish against.
    virtual const channel_base* loaned_from() const noexcept { return nullptr; }

protected:
    handle() = default;

    /// Records what NumPy needs about `a`: dtype, shape, order, data and whether it may be written.
    template <class A>
    void describe(const A& a)
    {
        m_name = a.name();
        m_dtype = a.dtype();
        m_shape.assign(a.shape().begin(), a.shape().end());
        m_fortran = a.fortran_order();
        m_read_only = A::is_read_only;
        m_data = const_cast<void*>(static_cast<const void*>(a.data()));
        m_nbytes = a.nbytes();
    }

    [[noreturn]] void refuse(const std::string& op, const std::string& why, const std::string& fix) const;

private:
    std::string m_name;
    ndshm::dtype m_dtype = ndshm::dtype::float64;
    shape_type m_shape;
    bool m_fortran = false;
    bool m_read_only = false;
    void* m_data = nullptr;
    std::size_t m_nbytes = 0;
};

/// A whole array: create, from_array, attach (T const when read-only) or a queue's pop.
template <class T>
class array_handle final : public handle {
public:
    explicit array_handle(shared_ndarray<T> a) : m_array(std::move(a)) { describe(m_array); }

    const char* kind() const noexcept override { return "array"; }
    void persist() override { m_array.persist(); }
    bool push_to(ndshm::array_queue& q, std::chrono::nanoseconds timeout) override
    {
        if constexpr (std::is_const_v<T>) {
            return handle::push_to(q, timeout);
        } else {
            // A copy goes into the queue; this one stays a valid mapping that no longer owns the name.
            shared_ndarray<T> copy = m_array;
            return q.push(std::move(copy), timeout);
        }
    }
    std::unique_ptr<ndshm::array_lock> make_lock() const override
    {
        return std::make_unique<ndshm::array_lock>(m_array);
    }

    const shared_ndarray<T>& array() const noexcept { return m_array; }

private:
    shared_ndarray<T> m_array;
};

/// Calls `f(tag)` where `tag::type` is the C++ element type of `t`; every call must return the same type.
template <class T>
struct type_tag {
    using type = T;
};
template <class F>
decltype(auto) with_type(ndshm::dtype t, F&& f)
{
    switch (t) {
    case ndshm::dtype::bool_:
        return f(type_tag<bool>{});
    case ndshm::dtype::int8:
        return f(type_tag<std::int8_t>{});
    case ndshm::dtype::int16:
        return f(type_tag<std::int16_t>{});
    case ndshm::dtype::int32:
        return f(type_tag<std::int32_t>{});
    case ndshm::dtype::int64:
        return f(type_tag<std::int64_t>{});
    case ndshm::dtype::uint8:
        return f(type_tag<std::uint8_t>{});
    case ndshm::dtype::uint16:
        return f(type_tag<std::uint16_t>{});
    case ndshm::dtype::uint32:
        return f(type_tag<std::uint32_t>{});
    case ndshm::dtype::uint64:
        return f(type_tag<std::uint64_t>{});
    case ndshm::dtype::float32:
        return f(type_tag<float>{});
    case ndshm::dtype::float64:
        return f(type_tag<double>{});
    case ndshm::dtype::complex64:
        return f(type_tag<std::complex<float>>{});
    case ndshm::dtype::complex128:
        break;
    }
    return f(type_tag<std::complex<double>>{});
}

/// The NumPy dtype of `t` (little-endian, as stored).
py::dtype numpy_dtype(ndshm::dtype t);

/// The ndshm dtype for a NumPy dtype (anything np.dtype() accepts). A byte-swapped dtype is accepted
/// only when `swapped_ok` (from_array converts the values); anything else ndshm does not store throws
/// ndshm::error naming it.
ndshm::dtype to_dtype(const py::handle& numpy_type, const std::string& op, bool swapped_ok = false);

/// A NumPy array over `h`'s data with `h` as its base (no copy); read-only if the mapping is.
py::array to_numpy(const std::shared_ptr<handle>& h);

/// The handle behind `a` (an array ndshm returned, or a view of one), or null.
std::shared_ptr<handle> find_handle(const py::handle& a);

/// The handle behind `a`, which must be the whole array the handle gives (not a view of part of it).
/// @throws ndshm::error naming `op` otherwise
std::shared_ptr<handle> whole_handle(const py::handle& a, const std::string& op);

/// Options with the directory backend set, if given.
ndshm::options make_options(const std::optional<std::string>& directory);

/// Records that this process owns `h`'s name (created or popped), so that persist(name) finds it.
void register_owned(const std::shared_ptr<handle>& h, const ndshm::options& opt);
/// Forgets an owned name (pushed, unlinked).
void forget_owned(const std::string& name, const ndshm::options& opt);

/// A timeout in seconds from Python: None, a negative value or infinity waits forever.
using timeout_type = std::optional<double>;

/// Calls `attempt(slice)` with the GIL released until it returns true or `timeout` has passed, in
/// slices of at most 50 ms, and lets Python handle signals between slices, so that Ctrl-C interrupts
/// any wait. Returns false on time-out. A timeout of 0 makes exactly one attempt with a zero slice.
template <class F>
bool wait_released(const timeout_type& timeout, F&& attempt)
{
    using clock = std::chrono::steady_clock;
    constexpr std::chrono::nanoseconds max_slice = std::chrono::milliseconds(50);
    if (timeout && std::isnan(*timeout)) {
        throw py::value_error("timeout must be a number of seconds or None, not NaN");
    }
    if (timeout && *timeout < 0) {
        throw py::value_error("timeout must be a non-negative number of seconds or None (wait forever), as in "
                              "queue.Queue");
    }
    const bool forever = !timeout || *timeout > 1e9; // 1e9 s (31 years): infinity too
    const auto deadline = forever ? clock::time_point::max()
                                  : clock::now() + std::chrono::duration_cast<clock::duration>(
                                                       std::chrono::duration<double>(*timeout));
    for (;;) {
        std::chrono::nanoseconds slice = max_slice;
        if (!forever) {
            const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - clock::now());
            slice = std::max(std::chrono::nanoseconds::zero(), std::min(left, max_slice));
        }
        bool done = false;
        {
            py::gil_scoped_release unlocked;
            done = attempt(slice);
        }
        if (done) {
            return true;
        }
        if (!forever && clock::now() >= deadline) {
            return false;
        }
        if (PyErr_CheckSignals() != 0) {
            throw py::error_already_set();
        }
    }
}

/// Adds Queue, Channel, Received and Lock to the module.
void bind_processes(py::module_& m);

} // namespace ndshm::python

#endif
