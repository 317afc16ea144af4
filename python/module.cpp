// The Python module `ndshm`: NumPy arrays in named shared-memory segments, over ndshm's C++ headers.
//
// This file: the exception family, arrays (create, from_array, attach, name_of), lifetime (persist,
// unlink, free_session, free_all) and inspection (list, info, gc). processes.cpp adds Queue, Channel
// and Lock.
#include "ndshm_python.hpp"

#include <ndshm/inspect.hpp>

#include "segment_json.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>

namespace ndshm::python {

namespace {

// ---------------------------------------------------------------------------------------------------
// Exceptions: one Python class per C++ class, with the same messages.

struct exception_classes {
    PyObject* error = nullptr;
    PyObject* not_found = nullptr;
    PyObject* already_exists = nullptr;
    PyObject* permission_denied = nullptr;
    PyObject* out_of_space = nullptr;
    PyObject* dtype_mismatch = nullptr;
    PyObject* format_error = nullptr;
    PyObject* serialization_error = nullptr;
};

// Created once with the module and never freed: translators may run until the interpreter is gone.
exception_classes& exceptions()
{
    static exception_classes e;
    return e;
}

PyObject* add_exception(py::module_& m, const char* name, const char* doc, std::initializer_list<PyObject*> bases)
{
    py::tuple t(bases.size());
    std::size_t i = 0;
    for (PyObject* b : bases) {
        t[i++] = py::reinterpret_borrow<py::object>(b);
    }
    const std::string qualified = std::string("ndshm.") + name;
    PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, t.ptr(), nullptr);
    if (cls == nullptr) {
        throw py::error_already_set();
    }
    m.attr(name) = py::reinterpret_borrow<py::object>(cls); // the module holds one reference, this file another
    return cls;
}

void define_exceptions(py::module_& m)
{
    auto& e = exceptions();
    e.error = add_exception(
        m, "Error",
        "Root of every exception ndshm raises (ndshm::error in C++). The message reads "
        "'ndshm: <operation> '<segment>': <cause>; <fix>'. `code` is the error code's value, "
        "`category` 'generic' (an errno value) or 'ndshm' (an ndshm::errc), `errno` the errno value "
        "the code stands for, "
        "`reason` the code's description.",
        {PyExc_RuntimeError});
    e.not_found = add_exception(m, "NotFound", "No segment of that name (ndshm::not_found); also a FileNotFoundError.",
                                {e.error, PyExc_FileNotFoundError});
    e.already_exists = add_exception(
        m, "AlreadyExists", "create with a name that is taken (ndshm::already_exists); also a FileExistsError.",
        {e.error, PyExc_FileExistsError});
    e.permission_denied = add_exception(m, "PermissionDenied",
                                        "The segment belongs to another user, or its mode forbids the access "
                                        "(ndshm::permission_denied); also a PermissionError.",
                                        {e.error, PyExc_PermissionError});
    e.out_of_space = add_exception(m, "OutOfSpace",
                                   "/dev/shm (or the directory backend) cannot hold the segment; the message says "
                                   "how much is needed and free (ndshm::out_of_space); also an OSError.",
                                   {e.error, PyExc_OSError});
    e.dtype_mismatch = add_exception(m, "DtypeMismatch",
                                     "The segment holds another dtype than asked for; the message names both "
                                     "(ndshm::dtype_mismatch); also a TypeError.",
                                     {e.error, PyExc_TypeError});
    e.format_error = add_exception(m, "FormatError",
                                   "Not an ndshm segment or .npy, corrupt, truncated, unfinished, of an unsupported "
                                   "dtype or of another kind (ndshm::format_error); also a ValueError.",
                                   {e.error, PyExc_ValueError});
    e.serialization_error = add_exception(
        m, "SerializationError", "A composite object's blob does not decode (ndshm::serialization_error).", {e.error});
}

PyObject* class_of(const ndshm::error& err)
{
    const auto& e = exceptions();
    if (dynamic_cast<const ndshm::not_found*>(&err) != nullptr) {
        return e.not_found;
    }
    if (dynamic_cast<const ndshm::already_exists*>(&err) != nullptr) {
        return e.already_exists;
    }
    if (dynamic_cast<const ndshm::permission_denied*>(&err) != nullptr) {
        return e.permission_denied;
    }
    if (dynamic_cast<const ndshm::out_of_space*>(&err) != nullptr) {
        return e.out_of_space;
    }
    if (dynamic_cast<const ndshm::dtype_mismatch*>(&err) != nullptr) {
        return e.dtype_mismatch;
    }
    if (dynamic_cast<const ndshm::format_error*>(&err) != nullptr) {
        return e.format_error;
    }
    if (dynamic_cast<const ndshm::serialization_error*>(&err) != nullptr) {
        return e.serialization_error;
    }
    return e.error;
}

// Sets the Python error for `err`; never throws (a failure leaves Python's own error set instead).
void set_python_error(const ndshm::error& err) noexcept
{
    PyObject* cls = class_of(err);
    const char* what = err.what();
    PyObject* msg = PyUnicode_DecodeUTF8(what, static_cast<Py_ssize_t>(std::strlen(what)), "backslashreplace");
    if (msg == nullptr) {
        return;
    }
    PyObject* inst = PyObject_CallFunctionObjArgs(cls, msg, nullptr);
    Py_DECREF(msg);
    if (inst == nullptr) {
        return;
    }
    const std::error_code& code = err.code();
    const bool generic = code.category() == std::generic_category();
    const auto set = [&](const char* attr, PyObject* value) {
        if (value != nullptr) {
            (void)PyObject_SetAttrString(inst, attr, value);
            Py_DECREF(value);
        }
        PyErr_Clear(); // attributes are extras: never let them replace the exception
    };
    set("code", PyLong_FromLong(code.value()));
    set("category", PyUnicode_FromString(generic ? "generic" : code.category().name()));
    const std::string reason = code.message();
    set("reason", PyUnicode_DecodeUTF8(reason.data(), static_cast<Py_ssize_t>(reason.size()), "backslashreplace"));
    // The errno the code stands for: itself, or the std::errc condition an ndshm::errc compares equal
    // to (EAGAIN for an unfinished segment, EILSEQ for a corrupt header).
    const std::error_condition cond = code.default_error_condition();
    if (cond.category() == std::generic_category()) {
        set("errno", PyLong_FromLong(cond.value()));
    }
    PyErr_SetObject(cls, inst);
    Py_DECREF(inst);
}

// ---------------------------------------------------------------------------------------------------
// Owned names, so that persist(name) finds the handle that owns it.

struct owned_key {
    std::string directory;
    std::string name;
    bool operator<(const owned_key& o) const { return std::tie(directory, name) < std::tie(o.directory, o.name); }
};

struct owned_entry {
    pid_t pid; // the process that registered it: a forked child owns nothing of its parent's
    std::weak_ptr<handle> h;
};

// Used with the GIL held only.
std::map<owned_key, owned_entry>& owned_names()
{
    static auto* names = new std::map<owned_key, owned_entry>(); // never destroyed: handles may outlive statics
    return *names;
}

owned_key key_of(const std::string& name, const ndshm::options& opt)
{
    std::string dir = opt.directory;
    if (dir.empty()) {
        const char* env = std::getenv("NDSHM_DIR");
        dir = env != nullptr ? env : "";
    }
    return owned_key{dir, name.size() > 1 && name[0] == '/' ? name.substr(1) : name};
}

// ---------------------------------------------------------------------------------------------------
// Shapes, orders and arrays.

[[noreturn]] void invalid(const std::string& op, const std::string& name, const std::string& cause,
                          const std::string& fix)
{
    detail::raise<ndshm::error>(op, name, cause, fix, make_error_code(errc::invalid_argument));
}

long long index_value(const py::handle& obj)
{
    PyObject* i = PyNumber_Index(obj.ptr());
    if (i == nullptr) {
        throw py::error_already_set();
    }
    const long long v = PyLong_AsLongLong(i);
    Py_DECREF(i);
    if (v == -1 && PyErr_Occurred() != nullptr) {
        throw py::error_already_set();
    }
    return v;
}

// A shape from an int or a sequence of ints, as NumPy takes it.
shape_type to_shape(const py::handle& obj, const std::string& op, const std::string& name)
{
    std::vector<long long> dims;
    if (PyIndex_Check(obj.ptr()) != 0) {
        dims.push_back(index_value(obj));
    } else {
        for (const py::handle item : py::iter(obj)) {
            dims.push_back(index_value(item));
        }
    }
    shape_type shape;
    for (const long long d : dims) {
        if (d < 0) {
            invalid(op, name, "negative dimension " + std::to_string(d) + " in the shape",
                    "give a shape of non-negative integers");
        }
        shape.push_back(static_cast<std::size_t>(d));
    }
    return shape;
}

// "C" or "F" (any case) to an order; "K" and "A" (when `keep_ok`) say: as the source array is.
char to_order_letter(const std::string& order, const std::string& op, bool keep_ok)
{
    if (order.size() == 1) {
        const char c = static_cast<char>(order[0] & ~0x20); // upper case
        if (c == 'C' || c == 'F' || (keep_ok && (c == 'K' || c == 'A'))) {
            return c;
        }
    }
    invalid(op, "", "order '" + order + "' is not one ndshm creates",
            keep_ok ? "use 'C' (row-major), 'F' (column-major) or 'K' (as the source array is)"
                    : "use 'C' (row-major) or 'F' (column-major)");
}

std::shared_ptr<handle> create_handle(ndshm::dtype t, const shape_type& shape, ndshm::order ord,
                                      const ndshm::options& opt)
{
    return with_type(t, [&](auto tag) -> std::shared_ptr<handle> {
        using T = typename decltype(tag)::type;
        return std::make_shared<array_handle<T>>(shared_ndarray<T>::create(shape, ord, opt));
    });
}

ndshm::options creation_options(const std::optional<std::string>& name, const std::optional<std::string>& directory,
                                bool populate)
{
    ndshm::options opt = make_options(directory);
    if (name) {
        opt.name = *name;
    }
    opt.populate = populate;
    return opt;
}

py::array create(const py::object& shape_obj, const py::object& dtype_obj, const std::string& order,
                 const std::optional<std::string>& name, const std::optional<std::string>& directory, bool populate)
{
    const std::string label = name ? *name : std::string();
    const shape_type shape = to_shape(shape_obj, "create", label);
    const ndshm::dtype t = to_dtype(dtype_obj, "create");
    const char ord = to_order_letter(order, "create", false);
    const ndshm::options opt = creation_options(name, directory, populate);
    std::shared_ptr<handle> h;
    {
        py::gil_scoped_release unlocked;
        h = create_handle(t, shape, ord == 'F' ? ndshm::order::fortran : ndshm::order::c, opt);
    }
    register_owned(h, opt);
    return to_numpy(h);
}

const py::object& numpy_function(const char* name)
{
    // One lookup per function; leaked on purpose (module state outlives any static destructor order).
    static auto* cache = new std::map<std::string, py::object>();
    auto it = cache->find(name);
    if (it == cache->end()) {
        it = cache->emplace(name, py::module_::import("numpy").attr(name)).first;
    }
    return it->second;
}

py::array from_array(const py::object& obj, const std::string& order, const std::optional<std::string>& name,
                     const std::optional<std::string>& directory, bool populate)
{
    const py::array src = numpy_function("asarray")(obj);
    const ndshm::dtype t = to_dtype(src.dtype(), "from_array", true);
    char ord = to_order_letter(order, "from_array", true);
    const bool c_contiguous = (src.flags() & py::array::c_style) != 0;
    const bool f_contiguous = (src.flags() & py::array::f_style) != 0;
    if (ord == 'K' || ord == 'A') {
        ord = f_contiguous && !c_contiguous ? 'F' : 'C';
    }
    shape_type shape;
    for (py::ssize_t k = 0; k < src.ndim(); ++k) {
        shape.push_back(static_cast<std::size_t>(src.shape(k)));
    }
    const ndshm::options opt = creation_options(name, directory, populate);
    std::shared_ptr<handle> h;
    {
        py::gil_scoped_release unlocked;
        h = create_handle(t, shape, ord == 'F' ? ndshm::order::fortran : ndshm::order::c, opt);
    }
    py::array dst = to_numpy(h);
    // The same bytes in the same order: one memcpy (without the GIL when it takes a while); anything
    // else (strided, byte-swapped, the other order) goes through NumPy's copy.
    const bool same_layout = (ord == 'C' ? c_contiguous : f_contiguous) &&
                             py::detail::npy_api::get().PyArray_EquivTypes_(numpy_dtype(t).ptr(), src.dtype().ptr()) !=
                                 0;
    if (h->nbytes() == 0) {
        // nothing to copy
    } else if (same_layout) {
        const void* from = src.data();
        if (h->nbytes() >= (1u << 20)) {
            py::gil_scoped_release unlocked;
            std::memcpy(h->data(), from, h->nbytes());
        } else {
            std::memcpy(h->data(), from, h->nbytes());
        }
    } else {
        numpy_function("copyto")(dst, src);
    }
    register_owned(h, opt);
    return dst;
}

py::array attach(const std::string& name, bool readonly, const std::optional<std::string>& directory, bool populate)
{
    ndshm::options opt = make_options(directory);
    opt.read_only = readonly;
    opt.populate = populate;
    std::shared_ptr<handle> h;
    {
        py::gil_scoped_release unlocked;
        const ndshm::any_ndarray any = ndshm::attach_any(name, opt);
        h = with_type(any.dtype(), [&](auto tag) -> std::shared_ptr<handle> {
            using T = typename decltype(tag)::type;
            if (readonly) {
                return std::make_shared<array_handle<const T>>(any.as<const T>());
            }
            return std::make_shared<array_handle<T>>(any.as<T>());
        });
    }
    return to_numpy(h);
}

std::string name_of(const py::object& a)
{
    const auto h = find_handle(a);
    if (!h) {
        invalid("name_of", "",
                "the array is not in an ndshm segment (not made by ndshm.create, from_array, attach, "
                "a Queue or a Channel, nor a view of such an array)",
                "copy it into one with ndshm.from_array(a)");
    }
    return h->name();
}

void persist(const py::object& target, const std::optional<std::string>& directory)
{
    if (py::isinstance<py::str>(target)) {
        const std::string name = target.cast<std::string>();
        const ndshm::options opt = make_options(directory);
        auto& names = owned_names();
        const auto it = names.find(key_of(name, opt));
        const std::shared_ptr<handle> h = it != names.end() && it->second.pid == ::getpid() ? it->second.h.lock()
                                                                                            : nullptr;
        if (!h) {
            invalid("persist", name,
                    "this process does not own the segment (it did not create or pop it, or it has pushed, "
                    "persisted or unlinked it since)",
                    "call persist in the process that owns it, while it still holds an array of it");
        }
        h->persist();
        names.erase(it);
        return;
    }
    const auto h = find_handle(target);
    if (!h) {
        invalid("persist", "", "the argument is neither a segment name nor an array in an ndshm segment",
                "pass the name, or an array from ndshm.create, from_array or a Queue");
    }
    h->persist();
    forget_owned(h->name(), make_options(directory));
}

void unlink(const std::string& name, const std::optional<std::string>& directory)
{
    const ndshm::options opt = make_options(directory);
    {
        py::gil_scoped_release unlocked;
        ndshm::unlink(name, opt);
    }
    forget_owned(name, opt);
}

std::size_t free_session()
{
    std::size_t n = 0;
    {
        py::gil_scoped_release unlocked;
        n = ndshm::free_session();
    }
    owned_names().clear();
    return n;
}

std::size_t free_all(const std::optional<std::string>& directory)
{
    const ndshm::options opt = make_options(directory);
    std::size_t n = 0;
    {
        py::gil_scoped_release unlocked;
        n = ndshm::free_all(opt);
    }
    // free_all removed the ndshm_ names; names chosen otherwise are still this process's.
    auto& names = owned_names();
    for (auto it = names.begin(); it != names.end();) {
        it = it->first.name.rfind("ndshm_", 0) == 0 ? names.erase(it) : std::next(it);
    }
    return n;
}

// ---------------------------------------------------------------------------------------------------
// Inspection: the records of `ndshm ls/info/gc --json`, from the same code (tools/segment_json.hpp).

py::object from_json(const std::string& text)
{
    static const auto* loads = new py::object(py::module_::import("json").attr("loads"));
    return (*loads)(text);
}

py::object record(const ndshm::segment_info& s) { return from_json(ndshm::tools::segment_json(s, "")); }

py::list list_segments(const std::optional<std::string>& directory)
{
    const ndshm::options opt = make_options(directory);
    std::vector<ndshm::segment_info> segments;
    {
        py::gil_scoped_release unlocked;
        segments = ndshm::list_segments(opt);
    }
    py::list out;
    for (const auto& s : segments) {
        out.append(record(s));
    }
    return out;
}

py::object info(const std::string& name, const std::optional<std::string>& directory)
{
    const ndshm::options opt = make_options(directory);
    ndshm::segment_info s;
    {
        py::gil_scoped_release unlocked;
        s = ndshm::inspect(name, opt);
    }
    return from_json(ndshm::tools::info_json(s));
}

py::list gc(bool dry_run, const std::optional<std::string>& directory, const py::object& undecided)
{
    const ndshm::options opt = make_options(directory);
    std::vector<ndshm::gc_entry> entries, kept;
    {
        py::gil_scoped_release unlocked;
        entries = ndshm::gc(opt, dry_run, &kept);
    }
    if (!undecided.is_none()) {
        for (const auto& e : kept) { // as the "undecided" entries of `ndshm gc --json`
            py::dict d;
            d["name"] = e.segment.name;
            d["reason"] = e.reason;
            undecided.attr("append")(d);
        }
    }
    py::list out;
    for (const auto& e : entries) {
        py::dict d;
        d["name"] = e.segment.name;
        d["reason"] = e.reason;
        d["removed"] = e.removed;
        d["error"] = e.error.empty() ? py::object(py::none()) : py::object(py::str(e.error));
        d["segment"] = record(e.segment);
        out.append(d);
    }
    return out;
}

std::string shape_text(const shape_type& s)
{
    std::string r = "(";
    for (std::size_t k = 0; k < s.size(); ++k) {
        r += (k != 0 ? ", " : "") + std::to_string(s[k]);
    }
    return r + (s.size() == 1 ? ",)" : ")");
}

} // namespace

// ---------------------------------------------------------------------------------------------------
// handle

void handle::refuse(const std::string& op, const std::string& why, const std::string& fix) const
{
    invalid(op, m_name, why, fix);
}

void handle::persist()
{
    refuse("persist", std::string("a channel slot (") + kind() + ") belongs to its channel",
           "persist the channel (Channel.persist), or copy the slot: ndshm.from_array(frame)");
}

bool handle::push_to(ndshm::array_queue& q, std::chrono::nanoseconds)
{
    if (read_only()) {
        refuse("push to '" + q.name() + "':", "the array was attached read-only, and this process does not own it",
               "push arrays this process created (create, from_array) or popped");
    }
    refuse("push to '" + q.name() + "':",
           std::string("a channel slot (") + kind() + ") is part of the channel's segment, not a whole array",
           "push a copy: ndshm.from_array(frame)");
}

std::unique_ptr<ndshm::array_lock> handle::make_lock() const
{
    refuse("Lock", "this array has no lock", "lock an array from ndshm.create, from_array, attach or a Queue");
}

// ---------------------------------------------------------------------------------------------------
// dtypes and arrays

namespace {

constexpr ndshm::dtype all_dtypes[] = {
    ndshm::dtype::bool_,      ndshm::dtype::int8,    ndshm::dtype::int16,   ndshm::dtype::int32,
    ndshm::dtype::int64,      ndshm::dtype::uint8,   ndshm::dtype::uint16,  ndshm::dtype::uint32,
    ndshm::dtype::uint64,     ndshm::dtype::float32, ndshm::dtype::float64, ndshm::dtype::complex64,
    ndshm::dtype::complex128,
};
constexpr std::size_t dtype_count = sizeof all_dtypes / sizeof all_dtypes[0];

// NumPy's dtype objects for ndshm's dtypes, made once; leaked on purpose (arrays may outlive statics).
PyObject** numpy_dtypes()
{
    static PyObject* table[dtype_count] = {};
    return table;
}

void make_numpy_dtypes()
{
    for (std::size_t i = 0; i < dtype_count; ++i) {
        numpy_dtypes()[static_cast<std::size_t>(all_dtypes[i])] =
            py::dtype(ndshm::dtype_descr(all_dtypes[i])).release().ptr();
    }
}

} // namespace

py::dtype numpy_dtype(ndshm::dtype t)
{
    return py::reinterpret_borrow<py::dtype>(numpy_dtypes()[static_cast<std::size_t>(t)]);
}

namespace {

[[noreturn]] void refuse_dtype(const std::string& op, const py::dtype& dt, const std::string& why,
                               const std::string& fix)
{
    detail::raise<ndshm::error>(op, "", "dtype '" + py::str(py::handle(dt)).cast<std::string>() + "' " + why, fix,
                                make_error_code(errc::unsupported_dtype));
}

} // namespace

ndshm::dtype to_dtype(const py::handle& numpy_type, const std::string& op, bool swapped_ok)
{
    const py::dtype dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(numpy_type));
    const char kind = dt.kind();
    const auto size = dt.itemsize();
    if (dt.has_fields() || !dt.attr("subdtype").is_none()) {
        refuse_dtype(op, dt, "is structured, which ndshm does not store", "store each field as an array of its own");
    }
    if (!dt.attr("isnative").cast<bool>() && !swapped_ok) {
        refuse_dtype(op, dt, "is not in this machine's byte order; ndshm stores little-endian data",
                     "use the native dtype, for example '<f8' for '>f8' (from_array converts the values)");
    }
    switch (kind) {
    case 'b':
        if (size == 1) {
            return ndshm::dtype::bool_;
        }
        break;
    case 'i':
    case 'u': {
        const bool s = kind == 'i';
        switch (size) {
        case 1:
            return s ? ndshm::dtype::int8 : ndshm::dtype::uint8;
        case 2:
            return s ? ndshm::dtype::int16 : ndshm::dtype::uint16;
        case 4:
            return s ? ndshm::dtype::int32 : ndshm::dtype::uint32;
        case 8:
            return s ? ndshm::dtype::int64 : ndshm::dtype::uint64;
        default:
            break;
        }
        break;
    }
    case 'f':
        if (size == 4 || size == 8) {
            return size == 4 ? ndshm::dtype::float32 : ndshm::dtype::float64;
        }
        break;
    case 'c':
        if (size == 8 || size == 16) {
            return size == 8 ? ndshm::dtype::complex64 : ndshm::dtype::complex128;
        }
        break;
    default:
        break;
    }
    refuse_dtype(op, dt, "is not one ndshm stores",
                 "use bool, int8 to int64, uint8 to uint64, float32, float64, complex64 or complex128");
}

py::array to_numpy(const std::shared_ptr<handle>& h)
{
    const py::object base = py::cast(h);
    const shape_type& shape = h->shape();
    const std::size_t n = shape.size();
    std::vector<py::ssize_t> dims(n), strides(n);
    auto step = static_cast<py::ssize_t>(ndshm::itemsize(h->dtype()));
    for (std::size_t j = 0; j < n; ++j) {
        const std::size_t k = h->fortran_order() ? j : n - 1 - j;
        dims[k] = static_cast<py::ssize_t>(shape[k]);
        strides[k] = step;
        step *= dims[k];
    }
    py::array a(numpy_dtype(h->dtype()), std::move(dims), std::move(strides), h->data(), base);
    if (h->read_only()) {
        // NumPy then also refuses to make it writable again: its base is not a writable buffer.
        py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    }
    return a;
}

std::shared_ptr<handle> find_handle(const py::handle& a)
{
    py::handle cur = a;
    // NumPy points a view's base at the array that owns the memory, or at the object that does: a
    // few steps at most.
    for (int depth = 0; depth < 64 && cur && py::isinstance<py::array>(cur); ++depth) {
        cur = py::detail::array_proxy(cur.ptr())->base;
    }
    if (cur && py::isinstance<handle>(cur)) {
        return cur.cast<std::shared_ptr<handle>>();
    }
    return nullptr;
}

std::shared_ptr<handle> whole_handle(const py::handle& a, const std::string& op)
{
    auto h = find_handle(a);
    if (!h) {
        invalid(op, "", "the array is not in an ndshm segment",
                "copy it into one first: ndshm.from_array(a) (a Channel's frames come from Channel.loan)");
    }
    const auto arr = py::reinterpret_borrow<py::array>(a);
    bool whole = arr.data() == h->data() && static_cast<std::size_t>(arr.ndim()) == h->shape().size() &&
                 arr.itemsize() == static_cast<py::ssize_t>(ndshm::itemsize(h->dtype()));
    auto step = static_cast<py::ssize_t>(ndshm::itemsize(h->dtype()));
    const std::size_t n = h->shape().size();
    for (std::size_t j = 0; whole && j < n; ++j) {
        const std::size_t k = h->fortran_order() ? j : n - 1 - j;
        const auto extent = static_cast<py::ssize_t>(h->shape()[k]);
        whole = arr.shape(static_cast<py::ssize_t>(k)) == extent &&
                (extent <= 1 || arr.strides(static_cast<py::ssize_t>(k)) == step);
        step *= extent;
    }
    if (!whole) {
        invalid(op, h->name(),
                "the array is a view of part of the segment (a slice, a transpose or another dtype), and " + op +
                    " takes the whole array",
                "pass the array itself, of shape " + shape_text(h->shape()));
    }
    return h;
}

ndshm::options make_options(const std::optional<std::string>& directory)
{
    ndshm::options opt;
    if (directory) {
        opt.directory = *directory;
    }
    return opt;
}

void register_owned(const std::shared_ptr<handle>& h, const ndshm::options& opt)
{
    auto& names = owned_names();
    // Drop entries whose arrays are gone, so the table stays as small as what is alive.
    for (auto it = names.begin(); it != names.end();) {
        it = it->second.h.expired() ? names.erase(it) : std::next(it);
    }
    names[key_of(h->name(), opt)] = owned_entry{::getpid(), h};
}

void forget_owned(const std::string& name, const ndshm::options& opt) { owned_names().erase(key_of(name, opt)); }

} // namespace ndshm::python

namespace py = pybind11;
namespace np = ndshm::python;

PYBIND11_MODULE(ndshm, m)
{
    m.doc() = R"(NumPy arrays in named POSIX shared-memory segments, from ndshm's C++ headers.

Every array is a numpy.ndarray over the segment's mapping (no copy), and every segment is a valid .npy
file. The process that creates a segment owns its name: when its last array over it is collected, the
name is unlinked, unless persist() handed it over. Forked children never unlink their parent's
segments. Any process of the same user attaches a segment by name, C++ or Python alike.

    a = ndshm.create((1000, 3), "float64")    # zero-filled, owned by this process
    name = ndshm.name_of(a)                     # pass this to any process
    b = ndshm.attach(name)                      # zero copy; dtype, shape and order from the segment
)";
    m.attr("__version__") = NDSHM_PYTHON_VERSION;

    np::define_exceptions(m);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) {
                std::rethrow_exception(p);
            }
        } catch (const ndshm::error& e) {
            np::set_python_error(e);
        }
    });
    np::make_numpy_dtypes();

    py::class_<np::handle, std::shared_ptr<np::handle>>(
        m, "Handle",
        "The C++ handle behind an ndshm array: the array's base, which keeps the mapping alive. The last\n"
        "array over a segment that this process created unlinks it when it is collected (unless persisted).")
        .def_property_readonly("name", &np::handle::name, "The segment's name.")
        .def_property_readonly("kind", &np::handle::kind,
                               "'array', 'loan' (a channel slot being written) or "
                               "'received' (a channel slot being read).")
        .def_property_readonly(
            "dtype", [](const np::handle& h) { return np::numpy_dtype(h.dtype()); }, "The NumPy dtype.")
        .def_property_readonly(
            "shape",
            [](const np::handle& h) {
                py::tuple t(h.shape().size());
                for (std::size_t k = 0; k < h.shape().size(); ++k) {
                    t[k] = py::int_(h.shape()[k]);
                }
                return t;
            },
            "The shape.")
        .def_property_readonly("nbytes", &np::handle::nbytes, "Bytes of data.")
        .def_property_readonly("read_only", &np::handle::read_only, "True for a read-only mapping or slot.")
        .def_property_readonly("fortran_order", &np::handle::fortran_order, "True for column-major data.")
        .def("__repr__", [](const np::handle& h) {
            return std::string("<ndshm.Handle ") + h.kind() + " '" + h.name() + "' " + ndshm::dtype_name(h.dtype()) +
                   " " + np::shape_text(h.shape()) + (h.fortran_order() ? " Fortran order" : "") +
                   (h.read_only() ? " read-only" : "") + ">";
        });

    m.def("create", &np::create, py::arg("shape"), py::arg("dtype") = "float64", py::arg("order") = "C",
          py::arg("name") = py::none(), py::kw_only(), py::arg("directory") = py::none(), py::arg("populate") = false,
          R"(Creates a zero-filled array in a new segment, owned by this process.

shape: an int or a sequence of ints. dtype: bool, int8..int64, uint8..uint64, float32, float64,
complex64 or complex128 (anything numpy.dtype() accepts for them). order: "C" (row-major) or "F"
(column-major). name: the segment's name (1 to 255 of [A-Za-z0-9._-]); None generates an unguessable
one. directory: a directory backend (a tmpfs directory) instead of /dev/shm (default: $NDSHM_DIR).
populate: prefault every page now.

Returns a numpy.ndarray over the mapping. The name is unlinked when the last array over it is
collected, unless persist() was called. Raises AlreadyExists, PermissionDenied, OutOfSpace, Error.)");
    m.def("from_array", &np::from_array, py::arg("a"), py::arg("order") = "K", py::arg("name") = py::none(),
          py::kw_only(), py::arg("directory") = py::none(), py::arg("populate") = false,
          R"(Creates a new segment holding a copy of `a` (any array-like), owned by this process.

The dtype is a's (a byte-swapped one becomes native, with the same values); order "K" keeps a's
order (Fortran if a is Fortran-contiguous), "C" or "F" chooses. Other arguments as for create().)");
    m.def("attach", &np::attach, py::arg("name"), py::arg("readonly") = false, py::kw_only(),
          py::arg("directory") = py::none(), py::arg("populate") = false,
          R"(Attaches the array segment `name` without copying: dtype, shape and order come from the segment.

Any ndshm array segment of this user, made by C++ or Python, and any .npy NumPy wrote into
/dev/shm (open_memmap) attaches. readonly=True maps it read-only (the array is not writeable).
Attaching never owns the name. Raises NotFound, PermissionDenied, FormatError (corrupt, truncated,
unfinished, unsupported dtype, or a queue, channel or object rather than an array), Error.)");
    m.def("name_of", &np::name_of, py::arg("a"),
          "The name of the segment behind `a` (an array from ndshm, or a view of one). Raises Error otherwise.");
    m.def("persist", &np::persist, py::arg("a_or_name"), py::kw_only(), py::arg("directory") = py::none(),
          R"(Hands the segment's name over: no array of this process unlinks it any more, and `ndshm gc` keeps
it. It stays until someone calls unlink(name). Takes an array this process created (or popped), or
its name.)");
    m.def("unlink", &np::unlink, py::arg("name"), py::kw_only(), py::arg("directory") = py::none(),
          R"(Removes the segment `name` now. Arrays over it stay valid; new attaches fail with NotFound.
Raises NotFound, PermissionDenied, Error.)");
    m.def("free_session", &np::free_session,
          "Unlinks every segment this process created and still owns; returns how many. Arrays stay valid.");
    m.def("free_all", &np::free_all, py::kw_only(), py::arg("directory") = py::none(),
          R"(Unlinks every ndshm_ segment of the calling user, in /dev/shm and the directory backend; returns
how many. Other users' segments are never touched.)");
    m.def("list", &np::list_segments, py::kw_only(), py::arg("directory") = py::none(),
          R"(The calling user's ndshm_ segments, as the records of `ndshm ls --json` (one dict each: name,
kind, dtype, shape, bytes, creator, persisted, trailer, ...), sorted by name.)");
    m.def("info", &np::info, py::arg("name"), py::kw_only(), py::arg("directory") = py::none(),
          R"(One segment, as `ndshm info --json` prints it: its record, with "users" (the pids that have it
open or mapped), "internals" (what the checks of its lock, ring or slots found) and "problems"
(everything found wrong with it, empty for a sound segment). Raises NotFound, PermissionDenied, Error.)");
    m.def("gc", &np::gc, py::arg("dry_run") = false, py::kw_only(), py::arg("directory") = py::none(),
          py::arg("undecided") = py::none(),
          R"(Removes the segments nobody can use any more (creator dead, not persisted), as `ndshm gc` does;
returns the entries of `ndshm gc --json`: dicts with name, reason, removed, error and segment.
dry_run=True removes nothing. Segments gc could not judge are kept; pass a list as `undecided` to
have them appended to it, as dicts with name and reason.)");

    np::bind_processes(m);

    // `from ndshm import *` must not shadow the builtin list or the gc module: those stay ndshm.list, ndshm.gc.
    py::list all;
    for (const char* name : {"Error",      "NotFound",      "AlreadyExists", "PermissionDenied",
                             "OutOfSpace", "DtypeMismatch", "FormatError",   "SerializationError",
                             "Handle",     "create",        "from_array",    "attach",
                             "name_of",    "persist",       "unlink",        "free_session",
                             "free_all",   "info",          "Queue",         "Channel",
                             "Received",   "Lock"}) {
        all.append(name);
    }
    m.attr("__all__") = all;
}
