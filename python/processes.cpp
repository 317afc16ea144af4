// The Python module's process tools, over ndshm's C++ classes: Queue (ndshm::array_queue), Channel
// (ndshm::channel<T>), Received (a channel slot being read) and Lock (ndshm::array_lock). Every wait
// releases the GIL and lets Python handle signals between slices of at most 50 ms.
#include "ndshm_python.hpp"

#include <ndshm/channel.hpp>
#include <ndshm/file.hpp>

#include <cstdlib>
#include <utility>

namespace ndshm::python {

namespace {

[[noreturn]] void invalid(const std::string& op, const std::string& name, const std::string& cause,
                          const std::string& fix)
{
    detail::raise<ndshm::error>(op, name, cause, fix, make_error_code(errc::invalid_argument));
}

/// Clears NumPy's WRITEABLE flag of one array object (after it was handed over).
void make_read_only(const py::handle& a)
{
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
}

py::tuple to_tuple(const shape_type& s)
{
    py::tuple t(s.size());
    for (std::size_t k = 0; k < s.size(); ++k) {
        t[k] = py::int_(s[k]);
    }
    return t;
}

} // namespace

// ---------------------------------------------------------------------------------------------------
// Queue

/// ndshm.Queue: a named, bounded queue of arrays between processes (ndshm::array_queue). Only names
/// travel; ownership moves from the pusher to the popper.
class queue_object {
public:
    static queue_object create(std::size_t capacity, const std::optional<std::string>& name,
                               const std::optional<std::string>& directory, bool populate)
    {
        queue_object q(directory, populate);
        if (name) {
            q.m_opt.name = *name;
        }
        py::gil_scoped_release unlocked;
        q.m_queue = ndshm::array_queue::create(capacity, q.m_opt);
        q.m_opt.name.clear();
        return q;
    }

    static queue_object attach(const std::string& name, const std::optional<std::string>& directory, bool populate)
    {
        queue_object q(directory, populate);
        py::gil_scoped_release unlocked;
        q.m_queue = ndshm::array_queue::attach(name, q.m_opt);
        return q;
    }

    bool push(const py::object& a, const timeout_type& timeout)
    {
        const auto h = whole_handle(a, "push");
        const bool pushed = wait_released(timeout,
                                          [&](std::chrono::nanoseconds slice) { return h->push_to(m_queue, slice); });
        if (pushed) {
            // The array belongs to the queue now, then to whoever pops it: this process may still read it
            // but should not write to it.
            forget_owned(h->name(), m_opt);
            make_read_only(a);
        }
        return pushed;
    }

    py::object pop(const timeout_type& timeout, const py::object& dtype)
    {
        std::optional<ndshm::dtype> want;
        if (!dtype.is_none()) {
            want = to_dtype(dtype, "pop");
        }
        ndshm::dtype type = want ? *want : m_last;
        std::shared_ptr<handle> got;
        wait_released(timeout, [&](std::chrono::nanoseconds slice) {
            for (;;) {
                try {
                    got = with_type(type, [&](auto tag) -> std::shared_ptr<handle> {
                        using T = typename decltype(tag)::type;
                        auto a = m_queue.pop<T>(slice);
                        return a ? std::make_shared<array_handle<T>>(std::move(a)) : nullptr;
                    });
                    break;
                } catch (const ndshm::dtype_mismatch&) {
                    if (want) {
                        throw; // pop(dtype=...) asked for this type: the array stays queued
                    }
                    // The next array holds another type than the last one: pop it as what it is.
                    if (const auto next = m_queue.front_dtype()) {
                        type = *next;
                    }
                }
            }
            return got != nullptr || m_queue.closed();
        });
        if (!got) {
            return py::none();
        }
        m_last = type;
        register_owned(got, m_opt);
        return to_numpy(got);
    }

    py::object next()
    {
        py::object a = pop(std::nullopt, py::none());
        if (a.is_none()) {
            throw py::stop_iteration();
        }
        return a;
    }

    const std::string& name() const { return m_queue.name(); }
    std::size_t capacity() const { return m_queue.capacity(); }
    std::size_t size() const { return m_queue.size(); }
    bool closed() const { return m_queue.closed(); }
    py::object front_dtype()
    {
        const auto t = m_queue.front_dtype();
        return t ? py::object(numpy_dtype(*t)) : py::object(py::none());
    }
    void close()
    {
        py::gil_scoped_release unlocked;
        m_queue.close();
    }
    void remove()
    {
        py::gil_scoped_release unlocked;
        m_queue.remove();
    }

private:
    queue_object(const std::optional<std::string>& directory, bool populate) : m_opt(make_options(directory))
    {
        m_opt.populate = populate;
    }

    ndshm::array_queue m_queue;
    ndshm::options m_opt;
    ndshm::dtype m_last = ndshm::dtype::float64; // the type the next pop tries first
};

// ---------------------------------------------------------------------------------------------------
// Channel

/// The dtype-erased channel behind ndshm.Channel.
class channel_base {
public:
    channel_base() = default;
    channel_base(const channel_base&) = delete;
    channel_base& operator=(const channel_base&) = delete;
    virtual ~channel_base() = default;

    virtual const std::string& name() const = 0;
    virtual ndshm::dtype dtype() const = 0;
    virtual std::size_t slots() const = 0;
    virtual const shape_type& slot_shape() const = 0;
    virtual bool closed() const = 0;
    virtual std::uint64_t reclaimed() const = 0;
    virtual void close() = 0;
    virtual void persist() = 0;
    /// A loaned slot, or null if none came free within `timeout`. Throws if the channel is closed.
    virtual std::shared_ptr<handle> loan(std::chrono::nanoseconds timeout) = 0;
    virtual void publish(handle& h) = 0;
    /// The oldest published slot, or null if nothing came within `timeout` (or closed and drained).
    virtual std::shared_ptr<handle> receive(std::chrono::nanoseconds timeout) = 0;
};

/// A loaned slot: writable until published. Unpublished, it goes back to the pool when its last
/// array goes.
template <class T>
class loan_handle final : public handle {
public:
    loan_handle(ndshm::slot<T> s, const channel_base* from)
        : m_slot(std::move(s)), m_keep(m_slot.array()), m_from(from), m_index(m_slot.index())
    {
        describe(m_keep);
    }
    const char* kind() const noexcept override { return "loan"; }
    std::size_t index() const noexcept override { return m_index; }
    const channel_base* loaned_from() const noexcept override { return m_from; }
    std::unique_ptr<ndshm::array_lock> make_lock() const override
    {
        return std::make_unique<ndshm::array_lock>(m_keep);
    }
    /// The slot, for publish; the mapping stays alive through m_keep.
    ndshm::slot<T> take() { return std::move(m_slot); }

private:
    ndshm::slot<T> m_slot;
    shared_ndarray<T> m_keep;
    const channel_base* m_from; // compared, never dereferenced
    std::size_t m_index;
};

/// A received slot: read-only; back to the pool at release() or when its last array goes.
template <class T>
class received_handle final : public handle {
public:
    explicit received_handle(ndshm::slot<const T> s)
        : m_slot(std::move(s)), m_keep(m_slot.array()), m_index(m_slot.index())
    {
        describe(m_keep);
    }
    const char* kind() const noexcept override { return "received"; }
    std::size_t index() const noexcept override { return m_index; }
    void release() noexcept override { m_slot.release(); }

private:
    ndshm::slot<const T> m_slot;
    shared_ndarray<const T> m_keep;
    std::size_t m_index;
};

template <class T>
class channel_impl final : public channel_base {
public:
    explicit channel_impl(ndshm::channel<T> ch) : m_ch(std::move(ch)) {}

    const std::string& name() const override { return m_ch.name(); }
    ndshm::dtype dtype() const override { return dtype_of<T>; }
    std::size_t slots() const override { return m_ch.slots(); }
    const shape_type& slot_shape() const override { return m_ch.slot_shape(); }
    bool closed() const override { return m_ch.closed(); }
    std::uint64_t reclaimed() const override { return m_ch.reclaimed(); }
    void close() override { m_ch.close(); }
    void persist() override { m_ch.persist(); }

    std::shared_ptr<handle> loan(std::chrono::nanoseconds timeout) override
    {
        auto s = m_ch.loan(timeout);
        return s ? std::make_shared<loan_handle<T>>(std::move(s), this) : nullptr;
    }

    void publish(handle& h) override
    {
        auto* l = dynamic_cast<loan_handle<T>*>(&h);
        if (l == nullptr || l->loaned_from() != this) {
            invalid("publish", name(), "the array is not a loan of this Channel object",
                    "publish the arrays this object's loan() returned");
        }
        m_ch.publish(l->take()); // throws if it was published already
    }

    std::shared_ptr<handle> receive(std::chrono::nanoseconds timeout) override
    {
        auto s = m_ch.receive(timeout);
        return s ? std::make_shared<received_handle<T>>(std::move(s)) : nullptr;
    }

private:
    ndshm::channel<T> m_ch;
};

/// ndshm.Received: one received slot, a context manager that releases it.
class received_object {
public:
    explicit received_object(std::shared_ptr<handle> h) : m_handle(std::move(h)) {}

    /// The read-only array over the slot, or None for an empty Received.
    py::object array()
    {
        if (!m_handle) {
            return py::none();
        }
        if (m_array.is_none()) {
            m_array = to_numpy(m_handle);
        }
        return m_array;
    }
    void release()
    {
        if (m_handle) {
            m_handle->release();
        }
    }
    bool holds() const noexcept { return static_cast<bool>(m_handle); }
    py::object index() const { return m_handle ? py::object(py::int_(m_handle->index())) : py::object(py::none()); }

private:
    std::shared_ptr<handle> m_handle;
    py::object m_array = py::none();
};

/// ndshm.Channel: ndshm::channel<T> for the dtype of the channel.
class channel_object {
public:
    static channel_object create(const py::object& shape, const py::object& dtype, std::size_t slots,
                                 const std::optional<std::string>& name, const std::optional<std::string>& directory)
    {
        shape_type slot_shape;
        if (PyIndex_Check(shape.ptr()) != 0) {
            slot_shape.push_back(shape.cast<std::size_t>());
        } else {
            for (const py::handle d : py::iter(shape)) {
                slot_shape.push_back(d.cast<std::size_t>());
            }
        }
        const ndshm::dtype t = to_dtype(dtype, "create channel");
        ndshm::options opt = make_options(directory);
        if (name) {
            opt.name = *name;
        }
        channel_object c;
        py::gil_scoped_release unlocked;
        c.m_impl = with_type(t, [&](auto tag) -> std::shared_ptr<channel_base> {
            using T = typename decltype(tag)::type;
            return std::make_shared<channel_impl<T>>(ndshm::channel<T>::create(slot_shape, slots, opt));
        });
        return c;
    }

    static channel_object attach(const std::string& name, const py::object& dtype,
                                 const std::optional<std::string>& directory)
    {
        const ndshm::options opt = make_options(directory);
        ndshm::dtype t = ndshm::dtype::float32;
        if (!dtype.is_none()) {
            t = to_dtype(dtype, "attach channel");
        } else {
            t = header_dtype(name, opt).value_or(t);
        }
        channel_object c;
        py::gil_scoped_release unlocked;
        c.m_impl = with_type(t, [&](auto tag) -> std::shared_ptr<channel_base> {
            using T = typename decltype(tag)::type;
            return std::make_shared<channel_impl<T>>(ndshm::channel<T>::attach(name, opt));
        });
        return c;
    }

    py::object loan(const timeout_type& timeout)
    {
        std::shared_ptr<handle> h;
        wait_released(timeout, [&](std::chrono::nanoseconds slice) {
            h = m_impl->loan(slice);
            return h != nullptr;
        });
        return h ? py::object(to_numpy(h)) : py::object(py::none());
    }

    void publish(const py::object& frame)
    {
        const auto h = whole_handle(frame, "publish");
        {
            py::gil_scoped_release unlocked;
            m_impl->publish(*h);
        }
        make_read_only(frame); // the slot is the receiver's now
    }

    received_object receive(const timeout_type& timeout)
    {
        std::shared_ptr<handle> h;
        wait_released(timeout, [&](std::chrono::nanoseconds slice) {
            h = m_impl->receive(slice);
            return h != nullptr || m_impl->closed();
        });
        return received_object(std::move(h));
    }

    const std::shared_ptr<channel_base>& impl() const { return m_impl; }

private:
    channel_object() = default;

    // The dtype in the channel's .npy header, read without mapping it; nothing if it cannot be read
    // (then attach reports why).
    static std::optional<ndshm::dtype> header_dtype(const std::string& name, const ndshm::options& opt)
    {
        std::string dir = opt.directory;
        if (dir.empty()) {
            const char* env = std::getenv("NDSHM_DIR");
            dir = env != nullptr && *env != '\0' ? env : "/dev/shm";
        }
        const std::string file = name.size() > 1 && name[0] == '/' ? name.substr(1) : name;
        if (file.empty() || file.find('/') != std::string::npos) {
            return std::nullopt;
        }
        try {
            py::gil_scoped_release unlocked;
            return ndshm::read_npy_header(dir + "/" + file).dtype;
        } catch (const ndshm::error&) {
            return std::nullopt;
        }
    }

    std::shared_ptr<channel_base> m_impl;
};

/// Iterating a Channel: each frame is released when the loop asks for the next one.
class channel_iterator {
public:
    explicit channel_iterator(channel_object ch) : m_channel(std::move(ch)) {}

    py::object next()
    {
        if (m_current) {
            m_current->release();
            m_current.reset();
        }
        std::shared_ptr<handle> h;
        const auto& impl = m_channel.impl();
        wait_released(std::nullopt, [&](std::chrono::nanoseconds slice) {
            h = impl->receive(slice);
            return h != nullptr || impl->closed();
        });
        if (!h) {
            throw py::stop_iteration();
        }
        m_current = h;
        return to_numpy(h);
    }

private:
    channel_object m_channel;
    std::shared_ptr<handle> m_current;
};

// ---------------------------------------------------------------------------------------------------
// Lock

/// ndshm.Lock: the per-segment lock of ndshm::array_lock, robust to a holder's death.
class lock_object {
public:
    lock_object(const py::object& target, const std::optional<std::string>& directory)
    {
        std::shared_ptr<handle> h;
        if (py::isinstance<py::str>(target)) {
            const std::string name = target.cast<std::string>();
            const ndshm::options opt = make_options(directory);
            py::gil_scoped_release unlocked;
            const ndshm::any_ndarray any = ndshm::attach_any(name, opt);
            h = with_type(any.dtype(), [&](auto tag) -> std::shared_ptr<handle> {
                using T = typename decltype(tag)::type;
                return std::make_shared<array_handle<T>>(any.as<T>());
            });
        } else {
            h = find_handle(target);
            if (!h) {
                invalid("Lock", "", "the array is not in an ndshm segment, so it has no lock",
                        "lock an array from ndshm.create, from_array, attach or a Queue, or a segment name");
            }
        }
        m_lock = h->make_lock();
    }

    bool acquire(bool blocking, double timeout)
    {
        if (!blocking && timeout != -1) {
            throw py::value_error("can't specify a timeout for a non-blocking call");
        }
        if (!blocking) {
            return m_lock->try_lock();
        }
        if (timeout < 0 && timeout != -1) {
            throw py::value_error("timeout value must be a non-negative number, or -1 (wait forever), as in "
                                  "threading.Lock");
        }
        return wait_released(timeout == -1 ? timeout_type() : timeout_type(timeout),
                             [&](std::chrono::nanoseconds slice) { return m_lock->try_lock_for(slice); });
    }
    void release() { m_lock->unlock(); }
    bool previous_owner_died() const { return m_lock->previous_owner_died(); }
    bool locked() const { return m_lock->owns_lock(); }
    const std::string& name() const { return m_lock->name(); }

private:
    std::unique_ptr<ndshm::array_lock> m_lock;
};

// ---------------------------------------------------------------------------------------------------

void bind_processes(py::module_& m)
{
    py::class_<queue_object>(m, "Queue", R"(A named, bounded queue of arrays between processes (ndshm::array_queue).

Only the segment's name travels: push hands the array's ownership to the queue, and the process that
pops it owns it (its last array over it unlinks it). The creating process owns the queue; other
processes open it by name, C++ or Python alike.

    q = ndshm.Queue.create(4)
    q.push(ndshm.from_array(frame))   # this process no longer owns the array
    a = q.pop()                        # in another process: a numpy.ndarray it owns, or None once
                                       # the queue is closed and drained)")
        .def_static("create", &queue_object::create, py::arg("capacity"), py::arg("name") = py::none(), py::kw_only(),
                    py::arg("directory") = py::none(), py::arg("populate") = false,
                    R"(Creates a queue for up to `capacity` arrays, owned by this process: its last handle closes
and removes it with every array still queued. populate: prefault the pages of popped arrays.)")
        .def_static("attach", &queue_object::attach, py::arg("name"), py::kw_only(), py::arg("directory") = py::none(),
                    py::arg("populate") = false, "Opens the queue `name` another process (or this one) created.")
        .def("push", &queue_object::push, py::arg("a"), py::arg("timeout") = py::none(),
             R"(Pushes `a`, an array this process created (create, from_array) or popped, whole; waits while
the queue is full, at most `timeout` seconds (None: forever). Returns False if it stayed full (`a`
is then still this process's). Afterwards `a` is read-only here: it belongs to whoever pops it.
Raises Error if the queue is closed or `a` cannot be handed over.)")
        .def("pop", &queue_object::pop, py::arg("timeout") = py::none(), py::arg("dtype") = py::none(),
             R"(Pops the oldest array, waiting at most `timeout` seconds (None: forever): a numpy.ndarray this
process owns, or None if nothing came in time or the queue is closed and drained (`closed` tells
which). With `dtype`, an array of another dtype raises DtypeMismatch and stays queued.)")
        .def("close", &queue_object::close,
             "Closes the queue for every process: pushes raise, pops drain what is queued, then return None.")
        .def("remove", &queue_object::remove, "Closes the queue and unlinks it and every array still queued, now.")
        .def_property_readonly("name", &queue_object::name, "The queue's name, to pass to other processes.")
        .def_property_readonly("capacity", &queue_object::capacity, "The most arrays it holds at once.")
        .def_property_readonly("closed", &queue_object::closed, "True after close() or remove().")
        .def_property_readonly("front_dtype", &queue_object::front_dtype,
                               "The dtype of the oldest queued array, or None (a snapshot).")
        .def("__len__", &queue_object::size, "Arrays queued now (a snapshot).")
        .def("__iter__", [](py::object self) { return self; })
        .def("__next__", &queue_object::next, "pop(); the iteration ends once the queue is closed and drained.");

    py::class_<received_object>(m, "Received", R"(A slot received from a Channel: a context manager whose value is the
read-only array over the slot (or None if nothing was received). Leaving the `with` block, or
release(), returns the slot to the channel; after that its data may change at any time.

    with ch.receive() as frame:
        total += frame.sum())")
        .def("__enter__", &received_object::array)
        .def("__exit__",
             [](received_object& r, const py::args&) {
                 r.release();
                 return false;
             })
        .def("release", &received_object::release, "Returns the slot to the channel now.")
        .def_property_readonly("array", &received_object::array, "The read-only array, or None.")
        .def_property_readonly("index", &received_object::index, "The slot's index in the channel, or None.")
        .def("__bool__", &received_object::holds, "True if a slot was received.");

    py::class_<channel_object>(m, "Channel",
                               R"(A loan/publish channel of fixed-shape arrays over pre-faulted slots in one segment
(ndshm::channel<T>): a steady stream between processes with no page fault and no copy.

    ch = ndshm.Channel.create((480, 640), "float32", slots=4)
    frame = ch.loan()          # a writable array over a free slot
    frame[...] = image
    ch.publish(frame)          # handed over; frame is read-only from now on

    for frame in ndshm.Channel.attach(name):   # in another process: read-only arrays
        total += frame.sum()                   # released when the loop moves on)")
        .def_static("create", &channel_object::create, py::arg("shape"), py::arg("dtype") = "float64",
                    py::arg("slots") = 4, py::arg("name") = py::none(), py::kw_only(),
                    py::arg("directory") = py::none(),
                    "Creates a channel of `slots` slots of `shape` and `dtype`, every page faulted in.")
        .def_static("attach", &channel_object::attach, py::arg("name"), py::arg("dtype") = py::none(), py::kw_only(),
                    py::arg("directory") = py::none(),
                    R"(Attaches the channel `name`; its dtype comes from the segment, or must be `dtype` if given
(else DtypeMismatch).)")
        .def("loan", &channel_object::loan, py::arg("timeout") = py::none(),
             R"(A free slot as a writable array, waiting at most `timeout` seconds (None: forever) while all
are taken; None on time-out. An unpublished loan goes back to the pool when its last array goes.
Raises Error if the channel is closed.)")
        .def("publish", &channel_object::publish, py::arg("frame"),
             "Publishes a loaned array to the next receiver; the array is read-only from then on.")
        .def("receive", &channel_object::receive, py::arg("timeout") = py::none(),
             R"(The oldest published slot, as a Received context manager, waiting at most `timeout` seconds
(None: forever). It is empty (false, its array None) on time-out, or once the channel is closed
and drained.)")
        .def(
            "close", [](channel_object& c) { c.impl()->close(); },
            "Closes the channel: loans raise, receivers get what is still published, then nothing.")
        .def(
            "persist", [](channel_object& c) { c.impl()->persist(); },
            "Hands the channel's name over, like ndshm.persist.")
        .def(
            "__iter__", [](const channel_object& c) { return channel_iterator(c); },
            "Receives until the channel is closed and drained; each frame is released when the loop moves on.")
        .def_property_readonly("name", [](const channel_object& c) { return c.impl()->name(); })
        .def_property_readonly("dtype", [](const channel_object& c) { return numpy_dtype(c.impl()->dtype()); })
        .def_property_readonly(
            "shape", [](const channel_object& c) { return to_tuple(c.impl()->slot_shape()); }, "The shape of one slot.")
        .def_property_readonly("slots", [](const channel_object& c) { return c.impl()->slots(); })
        .def_property_readonly("closed", [](const channel_object& c) { return c.impl()->closed(); })
        .def_property_readonly(
            "reclaimed", [](const channel_object& c) { return c.impl()->reclaimed(); },
            "Slots taken back from processes that died holding them.");

    py::class_<channel_iterator>(m, "_ChannelIterator")
        .def("__iter__", [](py::object self) { return self; })
        .def("__next__", &channel_iterator::next);

    py::class_<lock_object>(m, "Lock",
                            R"(The lock of a segment (ndshm::array_lock): a process-shared lock in the segment's
trailer, shared by every process, C++ or Python, that has the segment. If its holder dies, the next
acquire succeeds and previous_owner_died is True: repair the data, the lock itself is fine.

    with ndshm.Lock(a) as lock:        # a: an array from ndshm, or a segment name
        if lock.previous_owner_died:
            repair(a)
        a[0] += 1

The lock belongs to the thread that acquired it; use one Lock object per thread.)")
        .def(py::init<const py::object&, const std::optional<std::string>&>(), py::arg("a_or_name"), py::kw_only(),
             py::arg("directory") = py::none())
        .def("acquire", &lock_object::acquire, py::arg("blocking") = true, py::arg("timeout") = -1.0,
             R"(Acquires the lock, as threading.Lock.acquire: waits at most `timeout` seconds (-1: forever);
returns False if it did not get it. Raises Error if this thread already holds it.)")
        .def("release", &lock_object::release, "Releases the lock (raises Error if this thread does not hold it).")
        .def(
            "__enter__",
            [](lock_object& l) -> lock_object& {
                l.acquire(true, -1);
                return l;
            },
            py::return_value_policy::reference)
        .def("__exit__",
             [](lock_object& l, const py::args&) {
                 l.release();
                 return false;
             })
        .def_property_readonly("previous_owner_died", &lock_object::previous_owner_died,
                               "True if the last acquisition found that the previous holder had died holding it.")
        .def_property_readonly("locked", &lock_object::locked, "True while this object holds the lock.")
        .def_property_readonly("name", &lock_object::name, "The segment's name.");
}

} // namespace ndshm::python
