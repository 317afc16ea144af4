/// @file detail/object_file.hpp
/// Object files: a composite object written to one file in the layout of its segment, its arrays
/// optionally compressed by a codec (ndshm::codec, file.hpp), and read back by mapping the file and
/// expanding what is compressed.
#ifndef NDSHM_DETAIL_OBJECT_FILE_HPP
#define NDSHM_DETAIL_OBJECT_FILE_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../error.hpp"
#include "config.hpp"
#include "file_io.hpp"
#include "mapping.hpp"
#include "npy.hpp"
#include "object_format.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// Writes an object file atomically: `descs` describe the arrays (whose stored bytes are at `src`),
/// `blob` the rest; the file holds exactly the layout of a segment.
NDSHM_DECL void write_object_file(const std::string& path, const std::vector<array_desc>& descs,
                                  const std::vector<const void*>& src, const unsigned char* blob,
                                  std::size_t blob_bytes, std::uint32_t codec_id, const std::string& op);

/// Writes the arrays of an object (described by `descs`, bytes at `src`) and its blob to `path`,
/// compressing the arrays with `compression` if it is not null. `Codec` is ndshm::codec (file.hpp).
template <class Codec>
void save_object_arrays(const std::string& path, std::vector<array_desc> descs, std::vector<const void*> src,
                        const unsigned char* blob, std::size_t blob_bytes, const Codec* compression,
                        const std::string& op)
{
    std::vector<std::vector<unsigned char>> packed;
    std::uint32_t codec_id = codec_none;
    if (compression != nullptr) {
        codec_id = compression->id();
        if (codec_id != codec_zstd) {
            raise<error>(op, path, std::string("unknown codec '") + compression->name() + "'",
                         "use ndshm::zstd() from <ndshm/zstd.hpp>", errno_code(EINVAL));
        }
        packed.resize(descs.size());
        for (std::size_t i = 0; i < descs.size(); ++i) {
            if (descs[i].nbytes == 0) {
                continue;
            }
            packed[i] = compression->compress(src[i], descs[i].nbytes);
            if (packed[i].size() < descs[i].nbytes) {
                descs[i].compressed = true;
                descs[i].stored_bytes = packed[i].size();
                src[i] = packed[i].data();
            }
        }
    }
    write_object_file(path, descs, src, blob, blob_bytes, codec_id, op);
}

/// An uncompressed copy of the layout of `obj`: its arrays as array_descs in entry order.
NDSHM_DECL std::vector<array_desc> plain_descs(const parsed_object& obj);

/// The codec that decompresses `obj`: `given` (null: none given); format_error if that is not it.
template <class Codec>
const Codec* codec_for(const parsed_object& obj, const Codec* given, const std::string& op, const std::string& path)
{
    if (obj.codec == codec_none) {
        return nullptr;
    }
    if (given == nullptr || given->id() != obj.codec) {
        raise<format_error>(op, path, "the file's arrays are compressed with zstd",
                            "#include <ndshm/zstd.hpp>, link libzstd (zstd::libzstd_shared) and pass "
                            "file_options{ndshm::zstd()}",
                            make_error_code(errc::unsupported_format));
    }
    return given;
}

/// Writes an uncompressed image of the parsed object `obj` (image at `src_base`) into `dst`, a
/// zero-filled buffer of `l.total` bytes laid out by `l`: head, blob and every array, copied or
/// decompressed (by `c`, which may be null if nothing is compressed). The trailer is the caller's.
template <class Codec>
void expand_object(const parsed_object& obj, const unsigned char* src_base, unsigned char* dst, const object_layout& l,
                   const std::vector<array_desc>& descs, const Codec* c, const std::string& path)
{
    write_object_head(dst, l, descs, obj.blob, codec_none);
    for (std::size_t i = 0; i < descs.size(); ++i) {
        const object_entry& e = obj.entries[i];
        unsigned char* out = dst + object_payload_offset + l.offsets[i];
        if (e.compressed) {
            c->decompress(src_base + e.offset, e.stored_bytes, out, e.nbytes,
                          path + " (array " + std::to_string(i) + ")");
        } else if (e.nbytes != 0) {
            std::memcpy(out, src_base + e.offset, e.nbytes);
        }
    }
}

/// Maps the object file at `path` privately (writes to the mapping never reach the file), whole; the
/// caller parses it.
NDSHM_DECL std::shared_ptr<mapping> map_object_image(const std::string& path, const std::string& op);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void write_object_file(const std::string& path, const std::vector<array_desc>& descs,
                       const std::vector<const void*>& src, const unsigned char* blob, std::size_t blob_bytes,
                       std::uint32_t codec_id, const std::string& op)
{
    const object_layout l = compute_layout(descs, blob_bytes, op, path);
    std::vector<unsigned char> head(object_payload_offset + l.blob_offset + l.blob_bytes);
    write_object_head(head.data(), l, descs, blob, codec_id);
    head[0] = static_cast<unsigned char>(npy_magic[0]);
    atomic_file f(path, op);
    f.write_at(head.data(), head.size(), 0);
    for (std::size_t i = 0; i < descs.size(); ++i) {
        if (descs[i].stored_bytes != 0) {
            f.write_at(src[i], descs[i].stored_bytes, object_payload_offset + l.offsets[i]);
        }
    }
    trailer t;
    fill_object_trailer(t, l.payload_bytes);
    f.write_at(&t, sizeof t, l.trailer_offset);
    (void)f.commit(l.total);
}

std::vector<array_desc> plain_descs(const parsed_object& obj)
{
    std::vector<array_desc> descs(obj.entries.size());
    for (std::size_t i = 0; i < descs.size(); ++i) {
        const object_entry& e = obj.entries[i];
        descs[i].type = e.type;
        descs[i].shape = e.shape();
        descs[i].fortran = e.fortran;
        descs[i].nbytes = e.nbytes;
        descs[i].stored_bytes = e.nbytes;
    }
    return descs;
}

std::shared_ptr<mapping> map_object_image(const std::string& path, const std::string& op)
{
    fd_guard fd = open_file(path, O_RDONLY, 0, op);
    const struct stat st = stat_fd(fd.get(), op, path);
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        raise<format_error>(op, path, S_ISREG(st.st_mode) ? "the file is empty" : "not a regular file",
                            "give the path of an object file written by ndshm::save_object", errno_code(EINVAL));
    }
    std::size_t delta = 0;
    return map_file_range(fd.get(), path, 0, static_cast<std::size_t>(st.st_size), true, op, delta,
                          "; or write the file again with save_object, which leaves no holes");
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
