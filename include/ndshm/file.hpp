/// @file file.hpp
/// Arrays and composite objects on disk.
///
/// - `.npy` files: `save_npy` writes any shared_ndarray or xtensor expression; `read_npy<T>` reads one
///   (or an axis-0 row range of one) into a new shared array; `map_npy<T>` maps one (or a row range)
///   read-only without copying. NumPy reads what ndshm writes and the other way round.
/// - Object files: `save_object` writes a composite object to one file with the same layout as its
///   segment (arrays optionally compressed, see ndshm/zstd.hpp); `read_object<T>` maps such a file and
///   rebuilds the object; `share_file` loads it into a new segment for other processes.
///
/// Every write is atomic: the file is written under a temporary name in the same directory, flushed
/// and renamed over the final name, so a crash never leaves a half-written file under that name.
#ifndef NDSHM_FILE_HPP
#define NDSHM_FILE_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/config.hpp"
#include "detail/contiguous.hpp"
#include "detail/file_io.hpp"
#include "detail/object_archive.hpp"
#include "detail/object_file.hpp"
#include "detail/object_format.hpp"
#include "detail/xtensor_compat.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "object.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

/// The rows [begin, end) along axis 0 of an array on disk. `row_range{}` is every row.
struct row_range {
    static constexpr std::size_t all = std::numeric_limits<std::size_t>::max();
    std::size_t begin = 0;
    std::size_t end = all; ///< `all`: up to the last row
};

/// What a `.npy` header says.
struct npy_header {
    ndshm::dtype dtype = dtype::float64;
    shape_type shape;
    bool fortran_order = false;
    std::size_t data_offset = 0; ///< where the data starts in the file
};

/// Reads the header of the `.npy` file at `path` (nothing of the data).
/// @throws not_found, permission_denied, format_error (not a .npy, truncated, unsupported dtype), error
inline npy_header read_npy_header(const std::string& path)
{
    const detail::npy_file f = detail::open_npy_file(path, "read_npy_header");
    return npy_header{f.info.type, f.info.shape, f.info.fortran_order, f.info.data_offset};
}

/// Saves a shared array as a `.npy` file (C or Fortran order as it is). Atomic: a crash leaves either
/// the old file or the new one under `path`, never a part of the new one.
/// @throws not_found (no such directory), permission_denied, out_of_space, error
template <class T>
void save_npy(const std::string& path, const shared_ndarray<T>& a)
{
    const shape_type shape = a.empty() ? shape_type{0} : a.shape();
    (void)detail::write_npy_file(path, dtype_of<T>, shape, a.fortran_order() && shape.size() > 1, a.data(),
                                 a.size() * sizeof(T), "save_npy");
}

/// Saves any xtensor expression as a `.npy` file: a C- or Fortran-order container is written from its
/// own memory, anything else is evaluated first (C order). Atomic, as above.
template <class E>
void save_npy(const std::string& path, const xt::xexpression<E>& expr)
{
    detail::with_contiguous(expr, false,
                            [&](dtype t, const shape_type& shape, bool fortran, const void* data, std::size_t n) {
                                (void)detail::write_npy_file(path, t, shape, fortran, data, n, "save_npy");
                            });
}

/// Loads the rows `rows` (default: all) of the `.npy` file at `path` into a new shared array, owned
/// like one from create(). Reads only those rows from disk, straight into the segment. The file's
/// dtype must be T's; its order (C or Fortran) is kept. `opt` is as for create.
/// @throws not_found, permission_denied, format_error (not a .npy, truncated, unsupported dtype),
/// dtype_mismatch, out_of_space, error (a row range outside the array)
template <class T>
shared_ndarray<T> read_npy(const std::string& path, row_range rows, const options& opt = {})
{
    static_assert(!std::is_const_v<T>, "read_npy makes a new writable array: use read_npy<T> (or map_npy<T>)");
    const std::string op = "read_npy";
    const detail::npy_file f = detail::open_npy_file(path, op);
    detail::check_file_dtype<T>(op, path, f.info.type);
    const detail::row_slice s = detail::resolve_rows(f.info, rows.begin, rows.end, op, path);
    detail::npy_info info;
    auto m = detail::create_array_segment(opt, f.info.type, s.info.shape, f.info.fortran_order, op, info);
    detail::prefault(m->base() + info.data_offset, info.nbytes, true);
    detail::read_rows(f.fd.get(), f.info, s, m->base() + info.data_offset, op, path);
    m->publish();
    return detail::array_access::make<T>(std::move(m), info);
}

/// Loads the whole `.npy` file at `path` into a new shared array (see above).
template <class T>
shared_ndarray<T> read_npy(const std::string& path, const options& opt = {})
{
    return read_npy<T>(path, row_range{}, opt);
}

/// Maps the rows `rows` (default: all) of the `.npy` file at `path` read-only, without copying: the
/// handle is a view of the file (only the pages of those rows are mapped). `name()` is the file's
/// name; it is not a segment other processes can attach. Rows of a Fortran-order array are not
/// contiguous on disk, so a Fortran-order file maps whole only.
///
/// Like any memory map of a file, the view would fault if another program truncated the file while it
/// is mapped; ndshm's own writes replace files by rename and never do.
/// @throws not_found, permission_denied, format_error, dtype_mismatch, error
template <class T>
shared_ndarray<const T> map_npy(const std::string& path, row_range rows = {})
{
    const std::string op = "map_npy";
    const detail::npy_file f = detail::open_npy_file(path, op);
    detail::check_file_dtype<T>(op, path, f.info.type);
    const detail::row_slice s = detail::resolve_rows(f.info, rows.begin, rows.end, op, path);
    if (f.info.fortran_order && !s.whole && s.row_elems > 1 && f.info.shape.size() > 1) {
        detail::raise<error>(op, path,
                             "rows [" + std::to_string(s.begin) + ", " + std::to_string(s.end) +
                                 ") of a Fortran-order array are not contiguous on disk, so they cannot be mapped",
                             "map the whole file, load the rows with read_npy (it gathers them), or save the array "
                             "in C order",
                             detail::errno_code(EINVAL));
    }
    std::size_t delta = 0;
    auto m = detail::map_file_range(f.fd.get(), path, f.info.data_offset + s.begin * s.row_bytes, s.info.nbytes, false,
                                    op, delta,
                                    "; or copy it into shared memory with read_npy, which reads the file without "
                                    "mapping it");
    detail::npy_info info = s.info;
    info.data_offset = delta;
    return detail::array_access::make<const T>(std::move(m), info);
}

/// A compression codec for the arrays of object files. ndshm ships zstd (`#include <ndshm/zstd.hpp>`,
/// link libzstd); the core links nothing.
class codec {
public:
    virtual ~codec() = default;
    /// The codec's id in object files: 1 for zstd.
    virtual std::uint32_t id() const noexcept = 0;
    virtual const char* name() const noexcept = 0;
    /// The compressed form of `n` bytes at `src`.
    virtual std::vector<unsigned char> compress(const void* src, std::size_t n) const = 0;
    /// Decompresses `n` bytes at `src` into exactly `out_n` bytes at `dst`.
    /// @throws format_error (naming `what`) if the data is corrupt or does not decompress to `out_n` bytes
    virtual void decompress(const void* src, std::size_t n, void* dst, std::size_t out_n,
                            const std::string& what) const = 0;
};

/// Options of the object-file functions.
struct file_options {
    /// save_object: compress every array with this codec (an array that does not shrink is stored as
    /// is). read_object and share_file: the codec to decompress a compressed file with. Empty: none.
    std::shared_ptr<const codec> compression;
};

namespace detail {

/// Parses the object image that `m` maps: its `.npy` header, its trailer, its table of contents.
inline parsed_object parse_mapped_object(const mapping& m, const std::string& op, const std::string& name)
{
    const npy_info info = parse_npy(m.base(), m.size(), name);
    const trailer* t = find_trailer(m, info, op);
    return parse_object_image(m, info, t != nullptr ? t->kind : 0, op, name);
}

/// Maps the object file at `path` (privately: writes to the mapping never reach the file) and parses it.
inline std::shared_ptr<mapping> map_object_file(const std::string& path, const std::string& op, parsed_object& obj)
{
    auto m = map_object_image(path, op);
    obj = parse_mapped_object(*m, op, path);
    return m;
}

} // namespace detail

/// Saves a composite object to one file at `path`, in the layout of its segment (a valid `.npy` of
/// bytes, so NumPy opens it too). With fo.compression the arrays are compressed. Atomic. `obj` is not
/// modified.
/// @throws not_found (no such directory), permission_denied, out_of_space, serialization_error, error
template <class T>
void save_object(const std::string& path, const T& obj, const file_options& fo = {})
{
    detail::check_shareable<T>();
    if constexpr (detail::is_shareable_v<T>) {
        const std::string op = "save_object";
        detail::object_output_archive ar;
        detail::serialize_object(ar, obj, op);
        detail::save_object_arrays(path, ar.descs(), ar.data(), ar.blob().data(), ar.blob().size(),
                                   fo.compression.get(), op);
    }
}

/// Saves an object that is in shared memory to one file (see above).
NDSHM_DECL void save_object(const std::string& path, const shared_object& obj, const file_options& fo = {});

/// Rebuilds the object saved in the file at `path`. An uncompressed file is mapped (privately), so
/// shared_ndarray members are zero-copy views of it whose writes stay in this process; a compressed
/// one is decompressed into private memory first (pass its codec in fo.compression). xtensor
/// members are copied out. Other processes do not see these arrays: use share_file for that.
/// @throws not_found, permission_denied, format_error (not an object file, corrupt, compressed without
/// the codec), serialization_error, dtype_mismatch, error
template <class T>
T read_object(const std::string& path, const file_options& fo = {})
{
    detail::check_loadable<T>();
    if constexpr (detail::is_shareable_v<T> && detail::is_loadable_v<T> && std::is_default_constructible_v<T>) {
        const std::string op = "read_object";
        detail::parsed_object obj;
        auto m = detail::map_object_file(path, op, obj);
        const codec* c = detail::codec_for(obj, fo.compression.get(), op, path);
        if (c == nullptr) {
            return detail::decode_object<T>(m, obj, path);
        }
        const std::vector<detail::array_desc> descs = detail::plain_descs(obj);
        const detail::object_layout l = detail::compute_layout(descs, obj.blob_bytes, op, path);
        auto plain = detail::map_anonymous(l.total, path, op);
        detail::expand_object(obj, m->base(), plain->base(), l, descs, c, path);
        plain->base()[0] = static_cast<unsigned char>(detail::npy_magic[0]);
        detail::trailer t;
        detail::fill_object_trailer(t, l.payload_bytes);
        std::memcpy(plain->base() + l.trailer_offset, &t, sizeof t);
        m.reset(); // the compressed file is not needed any more
        const detail::npy_info info = detail::parse_npy(plain->base(), plain->size(), path);
        const detail::parsed_object expanded = detail::parse_object_image(*plain, info, detail::kind_object, op, path);
        return detail::decode_object<T>(plain, expanded, path);
    }
}

/// Loads the object file at `path` into a new segment (decompressing its arrays if needed) and
/// returns its owning handle: other processes then `ndshm::load<T>` it by name. `opt` is as for
/// share.
/// @throws as read_object, and already_exists, out_of_space
NDSHM_DECL shared_object share_file(const std::string& path, const options& opt = {}, const file_options& fo = {});

} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm {

void save_object(const std::string& path, const shared_object& obj, const file_options& fo)
{
    const std::string op = "save_object";
    const auto& m = detail::object_access::mapping_of(obj);
    if (!m) {
        detail::raise<error>(op, path, "the shared_object handle is empty", "save a handle share() returned",
                             detail::errno_code(EINVAL));
    }
    const detail::parsed_object parsed = detail::parse_mapped_object(*m, op, m->name());
    std::vector<const void*> src;
    for (const auto& e : parsed.entries) {
        src.push_back(m->base() + e.offset);
    }
    detail::save_object_arrays(path, detail::plain_descs(parsed), std::move(src), parsed.blob, parsed.blob_bytes,
                               fo.compression.get(), op);
}

shared_object share_file(const std::string& path, const options& opt, const file_options& fo)
{
    const std::string op = "share_file";
    (void)detail::data_offset_for(opt, op);
    detail::parsed_object obj;
    auto src = detail::map_object_file(path, op, obj);
    const codec* c = detail::codec_for(obj, fo.compression.get(), op, path);
    const std::vector<detail::array_desc> descs = detail::plain_descs(obj);
    const detail::object_layout l = detail::compute_layout(descs, obj.blob_bytes, op, path);
    auto m = detail::create_segment(opt, l.total, op);
    detail::prefault(m->base(), m->size(), true);
    detail::expand_object(obj, src->base(), m->base(), l, descs, c, path);
    detail::write_trailer(*m, l.trailer_offset, detail::kind_object, detail::object_payload_offset, l.payload_bytes);
    m->publish();
    return detail::object_access::make(std::move(m), descs.size());
}

} // namespace ndshm
#endif // NDSHM_DEFINITIONS

#endif
