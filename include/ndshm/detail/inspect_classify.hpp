/// @file detail/inspect_classify.hpp
/// What a segment is, told from its bytes alone (read with pread, never mapped, trusted in nothing):
/// an array, object, channel, queue, dict or list of ndshm's, a foreign `.npy`, an unfinished or a
/// corrupt segment, or another program's file. inspect.hpp's records are template parameters here
/// (`Info` is ndshm::segment_info), so that this header does not depend on the public one.
#ifndef NDSHM_DETAIL_INSPECT_CLASSIFY_HPP
#define NDSHM_DETAIL_INSPECT_CLASSIFY_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../error.hpp"
#include "npy.hpp"
#include "segment_names.hpp"
#include "segment_trailer.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// The kind of a segment record `Info` (ndshm::segment_kind).
template <class Info>
using kind_of = decltype(Info::kind);

/// The trailer record of a segment record `Info` (ndshm::trailer_info).
template <class Info>
using trailer_info_of = typename decltype(Info::trailer)::value_type;

/// Classifies a segment of `size` bytes from its contents, read through `read(offset, out, n)`
/// (returns the number of bytes read, fewer at the end). Fills kind, problem, the header fields and
/// the trailer of `s` (an ndshm::segment_info). Trusts nothing it reads. Exceptions of `read` propagate.
template <class Info, class Read>
void analyze_segment(Info& s, std::size_t size, Read&& read)
{
    using segment_kind = kind_of<Info>;
    s.bytes = size;
    s.kind = segment_kind::corrupt;
    if (size == 0 && s.name.rfind(name_prefix, 0) != 0) {
        s.kind = segment_kind::other; // an empty file under another program's name
        return;
    }
    if (size == 0) {
        s.kind = segment_kind::unfinished;
        s.problem = "empty: its creator has not sized it yet (still creating it, or it died meanwhile)";
        return;
    }
    // The first page holds every header ndshm writes; NumPy's are shorter still.
    std::vector<unsigned char> head(std::min<std::size_t>(size, 4096));
    head.resize(read(0, head.data(), head.size()));
    const std::size_t magic_bytes = std::min<std::size_t>(head.size(), sizeof npy_magic);
    const bool published = magic_bytes == sizeof npy_magic && std::memcmp(head.data(), npy_magic, magic_bytes) == 0;
    const bool pending = unpublished(head.data(), magic_bytes);
    // An unpublished .npy: its header is written, all but the magic's first byte.
    const bool pending_npy = pending && magic_bytes == sizeof npy_magic &&
                             std::memcmp(head.data() + 1, npy_magic + 1, sizeof npy_magic - 1) == 0;

    npy_info info;
    std::string header_problem;
    if ((published || pending_npy) && head.size() >= 12) {
        const std::size_t want = npy_header_bytes(head.data(), head.size(), size);
        if (want > head.size()) {
            const std::size_t had = head.size();
            head.resize(want);
            head.resize(had + read(had, head.data() + had, want - had));
        }
        head[0] = static_cast<unsigned char>(npy_magic[0]);
        try {
            info = parse_npy(head.data(), head.size(), s.name, size);
            s.has_header = true;
            s.dtype = info.type;
            s.shape = info.shape;
            s.fortran_order = info.fortran_order;
            s.data_offset = info.data_offset;
            s.data_bytes = info.nbytes;
        } catch (const format_error& e) {
            header_problem = e.what();
        }
    } else if (published || pending_npy) {
        header_problem = "truncated: the .npy header is cut short";
    }

    // ndshm's trailer follows the data that the .npy header describes (arrays, and objects, channels
    // and queues, which are .npy files of bytes); without a readable header, the last 256 bytes.
    std::size_t off = SIZE_MAX;
    if (s.has_header) {
        off = trailer_offset_in(info, size);
    } else if (size >= sizeof(trailer)) {
        off = size - sizeof(trailer);
    }
    trailer t{};
    if (off != SIZE_MAX && read(off, &t, sizeof t) == sizeof t && has_trailer_magic(t)) {
        trailer_info_of<Info> ti;
        ti.offset = off;
        ti.version = t.version;
        ti.kind = t.kind;
        ti.ready = t.state == state_ready;
        ti.flags = t.flags;
        ti.persisted = (t.flags & flag_persisted) != 0;
        ti.creator_uid = t.uid;
        ti.creator_pid = t.creator_pid;
        ti.creator_start = t.creator_start;
        ti.data_offset = t.data_offset;
        ti.data_bytes = t.data_bytes;
        ti.created_ns = t.created_ns;
        ti.has_lock = (t.flags & flag_lock) != 0;
        s.trailer = ti;
        if (!known_trailer_format(t)) {
            s.problem = "trailer format version " + std::to_string(t.version) + " (size " + std::to_string(t.size) +
                        ") is not the one this ndshm reads (version " + std::to_string(trailer_version) +
                        "); use the ndshm version that made it";
            return;
        }
        if (pending || t.state != state_ready) {
            s.kind = segment_kind::unfinished;
            s.problem = "unfinished: its creator has not published it (still writing it, or it died meanwhile)";
            return;
        }
        // Every kind ndshm makes is a .npy (objects, channels and queues as bytes) followed by the
        // trailer, which must agree with the header; an array must have that header.
        if (s.has_header) {
            try {
                check_trailer(t, info, s.name, "inspect");
            } catch (const format_error& e) {
                s.problem = e.what();
                return;
            }
        } else if (t.kind == kind_array) {
            s.problem = header_problem.empty() ? "an array segment without a .npy header" : header_problem;
            return;
        }
        switch (t.kind) {
        case kind_array:
            s.kind = segment_kind::array;
            return;
        case kind_object:
            s.kind = segment_kind::object;
            return;
        case kind_channel:
            s.kind = segment_kind::channel;
            return;
        case kind_queue:
            s.kind = segment_kind::queue;
            return;
        case kind_dict:
            s.kind = segment_kind::dict;
            return;
        case kind_list:
            s.kind = segment_kind::list;
            return;
        default:
            s.problem = "the trailer names an unknown kind " + std::to_string(t.kind) + "; a newer ndshm made it";
            return;
        }
    }
    // Zeros under a name that is not ndshm's are more likely another program's file than a segment of
    // ndshm's in the instant between its sizing and its header.
    const bool ndshm_name = s.name.rfind(name_prefix, 0) == 0;
    if (pending && (ndshm_name || pending_npy)) {
        s.kind = segment_kind::unfinished;
        s.problem = "unfinished: its creator has not published it and has not written ndshm's trailer yet (still "
                    "creating it, or it died meanwhile)";
        return;
    }
    if (s.has_header) {
        s.kind = segment_kind::foreign_npy;
        return;
    }
    if (!published && !pending_npy && !ndshm_name) {
        s.kind = segment_kind::other; // not ndshm's name, format or trailer: nothing is wrong with it
        return;
    }
    s.problem = !header_problem.empty() ? header_problem
                                        : "neither a .npy (no \\x93NUMPY magic) nor an ndshm segment (no trailer)";
}

} // namespace ndshm::detail

#endif
