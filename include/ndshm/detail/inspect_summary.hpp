/// @file detail/inspect_summary.hpp
/// What a queue, channel, composite object, dict or list holds, in brief (ndshm::contents_summary, what
/// `ndshm ls` shows instead of their `uint8` layout): a few hundred bytes of the control block or the
/// object header, read through `read`, checked only as far as the numbers need (the check of the
/// internals, detail/inspect_internals.hpp, says what is wrong). `Info` is ndshm::segment_info.
#ifndef NDSHM_DETAIL_INSPECT_SUMMARY_HPP
#define NDSHM_DETAIL_INSPECT_SUMMARY_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../error.hpp"
#include "channel_format.hpp"
#include "collection_format.hpp"
#include "inspect_classify.hpp"
#include "object_format.hpp"
#include "queue_format.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// A queue's summary: arrays queued and capacity, from its control block.
template <class Info, class Read>
void summarize_queue(Info& s, Read&& read)
{
    queue_control c{};
    if (s.data_bytes < sizeof c || read(s.data_offset, &c, sizeof c) != sizeof c ||
        std::memcmp(c.magic, queue_magic, sizeof c.magic) != 0 || c.capacity == 0 || c.capacity > queue_max_capacity ||
        queue_count(c.state) > c.capacity) {
        return; // inspect's check of the internals says what is wrong
    }
    const std::uint64_t count = queue_count(c.state);
    s.contents.known = true;
    s.contents.text = std::to_string(count) + " of " + std::to_string(c.capacity) + " queued" +
                      (c.closed != 0 ? ", closed" : "");
    s.contents.counts = {{"queued", count}, {"capacity", c.capacity}, {"closed", c.closed != 0 ? 1u : 0u}};
}

/// A channel's summary: slots in use (loaned, published or being read) of all slots.
template <class Info, class Read>
void summarize_channel(Info& s, Read&& read)
{
    const std::uint64_t ctl = s.trailer->offset + sizeof(trailer);
    channel_control c{};
    if (s.shape.empty() || read(ctl, &c, sizeof c) != sizeof c ||
        std::memcmp(c.magic, channel_magic, sizeof c.magic) != 0 || c.slots != s.shape[0] || c.slots == 0 ||
        c.slots > channel_max_slots) {
        return;
    }
    std::vector<slot_record> recs(c.slots);
    const std::size_t rec_bytes = recs.size() * sizeof(slot_record);
    if (read(ctl + sizeof c, recs.data(), rec_bytes) != rec_bytes) {
        return;
    }
    std::uint64_t counts[4] = {0, 0, 0, 0};
    for (const slot_record& r : recs) {
        counts[r.state <= slot_received ? r.state : slot_loaned] += 1; // an unknown state is not free
    }
    const std::uint64_t in_use = c.slots - counts[slot_free];
    s.contents.known = true;
    s.contents.text = std::to_string(in_use) + " of " + std::to_string(c.slots) + " slots in use" +
                      (in_use != 0 ? " (" + std::to_string(counts[slot_loaned]) + " loaned, " +
                                         std::to_string(counts[slot_ready]) + " published, " +
                                         std::to_string(counts[slot_received]) + " received)"
                                   : std::string()) +
                      (c.closed != 0 ? ", closed" : "");
    s.contents.counts = {{"in_use", in_use},
                         {"slots", c.slots},
                         {"loaned", counts[slot_loaned]},
                         {"published", counts[slot_ready]},
                         {"received", counts[slot_received]},
                         {"closed", c.closed != 0 ? 1u : 0u}};
}

/// An object's summary: its arrays (its table of contents) and the size of its blob (its other members).
template <class Info, class Read>
void summarize_object(Info& s, Read&& read)
{
    unsigned char head[object_header_bytes] = {};
    if (s.data_bytes < sizeof head || read(s.data_offset, head, sizeof head) != sizeof head ||
        std::memcmp(head, object_magic, sizeof object_magic) != 0) {
        return;
    }
    const std::uint64_t arrays = get_u64(head + 24), blob = get_u64(head + 64);
    if (arrays > s.data_bytes / object_entry_bytes || blob > s.data_bytes) {
        return;
    }
    s.contents.known = true;
    s.contents.text = std::to_string(arrays) + (arrays == 1 ? " array" : " arrays") + ", a blob of " +
                      std::to_string(blob) + (blob == 1 ? " byte" : " bytes");
    s.contents.counts = {{"arrays", arrays}, {"blob_bytes", blob}};
}

/// A dict's or list's summary: entries and capacity, from its control block.
template <class Info, class Read>
void summarize_collection(Info& s, Read&& read)
{
    collection_control c{};
    collection_layout l;
    const std::uint32_t kind = s.kind == kind_of<Info>::dict ? kind_dict : kind_list;
    if (s.data_bytes < sizeof c || read(s.data_offset, &c, sizeof c) != sizeof c ||
        !collection_control_problem(c, kind, static_cast<std::size_t>(s.data_bytes), l).empty()) {
        return; // inspect's check of the internals says what is wrong
    }
    const std::uint64_t size = view_size(c.view);
    s.contents.known = true;
    s.contents.text = std::to_string(size) + " of " + std::to_string(c.capacity) + " entries";
    s.contents.counts = {{"entries", size}, {"capacity", static_cast<std::uint64_t>(c.capacity)}};
}

/// Fills `s.contents` for the kinds that have a summary (one function per kind). Errors of `read`
/// leave it empty.
template <class Info, class Read>
void summarize_contents(Info& s, Read&& read)
{
    using segment_kind = kind_of<Info>;
    if (!s.trailer || s.trailer->version != trailer_version || !s.problem.empty()) {
        return;
    }
    try {
        switch (s.kind) {
        case segment_kind::queue:
            summarize_queue(s, read);
            break;
        case segment_kind::channel:
            summarize_channel(s, read);
            break;
        case segment_kind::object:
            summarize_object(s, read);
            break;
        case segment_kind::dict:
        case segment_kind::list:
            summarize_collection(s, read);
            break;
        default:
            break;
        }
    } catch (const error&) {
        s.contents = decltype(s.contents){};
    }
}

} // namespace ndshm::detail

#endif
