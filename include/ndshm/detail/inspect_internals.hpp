/// @file detail/inspect_internals.hpp
/// The check of a segment's internals that inspect() makes (`ndshm info` shows it): the lock in the
/// trailer; a queue's control block, ring, queued arrays and pool; a channel's control block, slot
/// records and ring; a composite object's header, table of contents and extents; a dict's or list's
/// table, index and entry segments. Read through `read` (pread), never mapped, trusting nothing.
/// `Report` is ndshm::internals_report and `Info` ndshm::segment_info (inspect.hpp).
#ifndef NDSHM_DETAIL_INSPECT_INTERNALS_HPP
#define NDSHM_DETAIL_INSPECT_INTERNALS_HPP

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "../dtype.hpp"
#include "../error.hpp"
#include "channel_format.hpp"
#include "collection_format.hpp"
#include "inspect_classify.hpp"
#include "liveness.hpp"
#include "object_format.hpp"
#include "queue_format.hpp"
#include "segment_location.hpp"
#include "sync.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// Reads the 64 bytes of a lock at `off` and reports on it under the label `which`.
template <class Report, class Read>
void check_lock_at(Report& r, std::uint64_t off, const std::string& which, Read&& read)
{
    unsigned char bytes[lock_room] = {};
    if (read(off, bytes, sizeof bytes) != sizeof bytes) {
        r.problems.push_back(which + " lies beyond the end of the segment");
        return;
    }
    const lock_report l = describe_lock(bytes);
    if (!l.problem.empty()) {
        r.problems.push_back(which + " is corrupt: " + l.problem);
        return;
    }
    std::string note = which + ": ";
    if (!l.held) {
        note += "free";
    } else {
        note += "held by thread " + std::to_string(l.tid) +
                (l.pid != 0 ? " of process " + std::to_string(l.pid) : std::string()) + " (" + l.holder + ")";
        if (l.holder_state == liveness::dead) {
            r.problems.push_back(which + " is held by thread " + std::to_string(l.tid) + ", which is dead (" +
                                 l.holder +
                                 "); the next locker takes it over, and the data it guards may be "
                                 "half-updated");
        } else if (l.holder_stopped) {
            r.problems.push_back(which + " is held by thread " + std::to_string(l.tid) +
                                 ", which is stopped: untimed waits for it fail after 10 s; resume it (kill -CONT)");
        }
    }
    if (l.takeovers != 0) {
        note += "; taken over from a dead holder " + std::to_string(l.takeovers) + " time(s)";
    }
    r.notes.push_back(note);
}

/// The queue's control block, ring and queued arrays.
template <class Report, class Info, class Read>
void check_queue(Report& r, const Info& s, Read&& read)
{
    queue_control c{};
    if (s.data_bytes < sizeof c || read(s.data_offset, &c, sizeof c) != sizeof c) {
        r.problems.push_back("the queue's control block is missing");
        return;
    }
    if (std::memcmp(c.magic, queue_magic, sizeof c.magic) != 0 || c.version != queue_version ||
        c.entry_size != sizeof(queue_entry)) {
        r.problems.push_back("the queue's control block has an unknown magic, version or entry size");
        return;
    }
    if (c.capacity == 0 || c.capacity > queue_max_capacity || c.pool_records > queue_max_pool ||
        c.record_size != sizeof(queue_pool_record) ||
        queue_data_bytes(static_cast<std::size_t>(c.capacity), c.pool_records) > s.data_bytes) {
        r.problems.push_back("the queue's capacity (" + std::to_string(c.capacity) + ") and pool (" +
                             std::to_string(c.pool_records) + ") do not fit its " + std::to_string(s.data_bytes) +
                             " bytes");
        return;
    }
    const std::uint64_t head = queue_head(c.state), count = queue_count(c.state);
    r.notes.push_back("queue: capacity " + std::to_string(c.capacity) + ", " + std::to_string(count) + " queued, " +
                      std::to_string(c.pushed) + " pushed, " + std::to_string(c.popped) + " popped" +
                      (c.closed != 0 ? ", closed" : ""));
    if (head >= c.capacity || count > c.capacity) {
        r.problems.push_back("the queue's state is corrupt (head " + std::to_string(head) + ", count " +
                             std::to_string(count) + ", capacity " + std::to_string(c.capacity) + ")");
    } else {
        for (std::uint64_t i = 0; i < count; ++i) {
            const std::uint64_t slot = (head + i) % c.capacity;
            queue_entry e{};
            std::string name;
            ndshm::dtype type{};
            if (read(s.data_offset + sizeof c + slot * sizeof e, &e, sizeof e) != sizeof e ||
                !queue_entry_valid(e, name, type)) {
                r.problems.push_back("queued entry " + std::to_string(i) +
                                     " is corrupt (no valid name, dtype or identity)");
                continue;
            }
            const int err = names_file(location{s.directory, name}, file_id{e.dev, e.ino});
            if (err == ESTALE) {
                r.problems.push_back("queued array '" + name +
                                     "' names another file now (removed and created again): a pop drops its entry");
            } else if (err != 0) {
                r.problems.push_back("queued array '" + name + "' is gone (" + std::generic_category().message(err) +
                                     "): a pop drops its entry");
            }
        }
    }
    if (c.closed > 1) {
        r.problems.push_back("the queue's closed flag holds " + std::to_string(c.closed));
    }
    // The recycling pool: how many segments are free, held and queued, and holders that are gone.
    std::size_t counts[4] = {0, 0, 0, 0};
    proc_cache cache;
    const std::uint64_t pool_at = s.data_offset + queue_data_bytes(static_cast<std::size_t>(c.capacity));
    for (std::uint32_t i = 0; i < c.pool_records; ++i) {
        queue_pool_record rec{};
        if (read(pool_at + std::uint64_t(i) * sizeof rec, &rec, sizeof rec) != sizeof rec) {
            r.problems.push_back("the queue's pool records are cut short");
            break;
        }
        if (rec.state > pool_queued) {
            r.problems.push_back("pool record " + std::to_string(i) + " has an unknown state " +
                                 std::to_string(rec.state));
            continue;
        }
        ++counts[rec.state];
        if (rec.state == pool_held) {
            process_check p;
            if (holder_gone(rec.pid, rec.start, &cache, &p)) {
                r.problems.push_back("pooled segment " + std::to_string(i) + " is held by a process that is gone (" +
                                     p.detail + "): `ndshm gc` removes it, and the next make() forgets it");
            }
        }
    }
    if (c.pool_records != 0) {
        r.notes.push_back("pool: " + std::to_string(c.pool_records) + " records: " + std::to_string(counts[pool_free]) +
                          " free, " + std::to_string(counts[pool_held]) + " held, " +
                          std::to_string(counts[pool_queued]) + " queued; " + std::to_string(c.pool_created) +
                          " segments made and " + std::to_string(c.reused) + " reused so far");
    }
    check_lock_at(r, s.data_offset + offsetof(queue_control, lock), "the queue's lock", read);
}

/// The channel's control block, slot records and ring.
template <class Report, class Info, class Read>
void check_channel(Report& r, const Info& s, Read&& read)
{
    const std::uint64_t ctl = s.trailer->offset + sizeof(trailer);
    channel_control c{};
    if (s.shape.empty() || read(ctl, &c, sizeof c) != sizeof c) {
        r.problems.push_back("the channel's control block is missing");
        return;
    }
    const std::uint64_t slots = s.shape[0];
    if (std::memcmp(c.magic, channel_magic, sizeof c.magic) != 0 || c.slots != slots || slots == 0 ||
        slots > channel_max_slots || c.slot_bytes * slots != s.data_bytes ||
        s.bytes < ctl + channel_extra_bytes(slots)) {
        r.problems.push_back("the channel's control block disagrees with its header (magic, slot count or size)");
        return;
    }
    std::vector<slot_record> recs(static_cast<std::size_t>(slots));
    std::vector<std::uint32_t> ring(static_cast<std::size_t>(slots));
    const std::size_t rec_bytes = recs.size() * sizeof(slot_record), ring_bytes = ring.size() * sizeof(std::uint32_t);
    if (read(ctl + sizeof c, recs.data(), rec_bytes) != rec_bytes ||
        read(ctl + sizeof c + rec_bytes, ring.data(), ring_bytes) != ring_bytes) {
        r.problems.push_back("the channel's slot records are cut short");
        return;
    }
    std::size_t counts[4] = {0, 0, 0, 0};
    proc_cache cache;
    const bool ring_ok = c.head <= c.tail && c.tail - c.head <= slots;
    for (std::size_t i = 0; i < recs.size(); ++i) {
        const slot_record& rec = recs[i];
        if (rec.state > slot_received) {
            r.problems.push_back("slot " + std::to_string(i) + " has an unknown state " + std::to_string(rec.state));
            continue;
        }
        ++counts[rec.state];
        if (rec.state == slot_loaned || rec.state == slot_received) {
            process_check p;
            if (holder_gone(rec.pid, rec.start, &cache, &p)) {
                r.problems.push_back("slot " + std::to_string(i) + " is held by a process that is gone (" + p.detail +
                                     "): the next loan that finds no free slot takes it back");
            }
        } else if (rec.state == slot_ready && ring_ok && (rec.seq < c.head || rec.seq >= c.tail)) {
            r.problems.push_back("slot " + std::to_string(i) + " is published as number " + std::to_string(rec.seq) +
                                 ", outside the ring (" + std::to_string(c.head) + " to " + std::to_string(c.tail) +
                                 "): a process died while publishing or receiving it; the next loan that finds no "
                                 "free slot takes it back");
        }
    }
    r.notes.push_back("channel: " + std::to_string(slots) + " slots: " + std::to_string(counts[slot_free]) + " free, " +
                      std::to_string(counts[slot_loaned]) + " loaned, " + std::to_string(counts[slot_ready]) +
                      " published, " + std::to_string(counts[slot_received]) + " received; " +
                      std::to_string(c.published) + " published, " + std::to_string(c.received) + " received and " +
                      std::to_string(c.reclaimed) + " reclaimed so far" + (c.closed != 0 ? "; closed" : ""));
    if (!ring_ok) {
        r.problems.push_back("the channel's ring is corrupt (head " + std::to_string(c.head) + ", tail " +
                             std::to_string(c.tail) + ")");
    } else {
        for (std::uint64_t k = c.head; k < c.tail; ++k) {
            const std::uint32_t i = ring[static_cast<std::size_t>(k % slots)];
            if (i >= slots || recs[i].state != slot_ready || recs[i].seq != k) {
                r.problems.push_back("the ring names slot " + std::to_string(i) + " for publication " +
                                     std::to_string(k) + ", which is not that published slot");
            }
        }
        if (c.tail - c.head != counts[slot_ready]) {
            r.problems.push_back("the ring holds " + std::to_string(c.tail - c.head) +
                                 " published slots, the records " + std::to_string(counts[slot_ready]));
        }
    }
    check_lock_at(r, ctl + offsetof(channel_control, producer_lock), "the channel's producer lock", read);
    check_lock_at(r, ctl + offsetof(channel_control, consumer_lock), "the channel's consumer lock", read);
}

/// The object's header, table of contents and extents (the blob is checked by load<T>, which knows T).
template <class Report, class Info, class Read>
void check_object(Report& r, const Info& s, Read&& read)
{
    const std::size_t n = static_cast<std::size_t>(s.data_bytes);
    unsigned char head[object_header_bytes] = {};
    if (n < sizeof head || read(s.data_offset, head, sizeof head) != sizeof head) {
        r.problems.push_back("the object header is missing");
        return;
    }
    // Everything parse_object_payload reads lies before the end of the table of extents or the blob's
    // start, whichever is last: read that much (at most 64 MiB), never the arrays.
    const auto end_of = [](std::uint64_t off, std::uint64_t len) {
        return len > UINT64_MAX - off ? UINT64_MAX : off + len;
    };
    const std::uint64_t need = std::max({std::uint64_t(sizeof head),
                                         end_of(get_u64(head + 32), get_u64(head + 24) * 64),
                                         end_of(get_u64(head + 40), get_u64(head + 48) * 8), get_u64(head + 56)});
    if (need > n) {
        r.problems.push_back("corrupt composite object: its table of contents, extents or blob lie outside its " +
                             std::to_string(n) + " payload bytes");
        return;
    }
    if (need > (std::uint64_t(64) << 20)) {
        r.notes.push_back("object: a table of contents of " + std::to_string(need) + " bytes, not checked");
        return;
    }
    std::vector<unsigned char> meta(static_cast<std::size_t>(need));
    if (read(s.data_offset, meta.data(), meta.size()) != meta.size()) {
        r.problems.push_back("the object's table of contents is cut short");
        return;
    }
    try {
        // Told the payload's real size, parsing reads only inside the regions the header names, all of
        // which lie in the `need` bytes read.
        const parsed_object obj = parse_object_payload(meta.data(), n, object_payload_offset, "inspect", s.name);
        r.notes.push_back("object: " + std::to_string(obj.entries.size()) + " arrays, a blob of " +
                          std::to_string(obj.blob_bytes) + " bytes");
    } catch (const format_error& e) {
        r.problems.push_back(e.what());
    }
}

/// A dict's or list's table: its control block, the records of its entries in order, a dict's keys
/// and index, the entry segments (each must still be the file recorded), records left by a change
/// that a process did not finish, and the lock.
template <class Report, class Info, class Read>
void check_collection(Report& r, const Info& s, Read&& read)
{
    const std::uint32_t kind = s.kind == kind_of<Info>::dict ? kind_dict : kind_list;
    const std::string noun = collection_noun(kind);
    collection_control c{};
    if (s.data_bytes < sizeof c || read(s.data_offset, &c, sizeof c) != sizeof c) {
        r.problems.push_back("the " + noun + "'s control block is missing");
        return;
    }
    collection_layout l;
    if (const std::string why = collection_control_problem(c, kind, static_cast<std::size_t>(s.data_bytes), l);
        !why.empty()) {
        r.problems.push_back("the " + noun + "'s table is corrupt: " + why);
        return;
    }
    const std::size_t size = static_cast<std::size_t>(view_size(c.view));
    r.notes.push_back(noun + ": " + std::to_string(size) + " of " + std::to_string(l.capacity) + " entries; " +
                      std::to_string(c.changes) + " changes, " + std::to_string(c.recoveries) +
                      " interrupted ones repaired" + (c.closed != 0 ? "; removed" : "") +
                      (c.dirty != 0 ? "; a change is under way (or was, by a process that died)" : ""));
    const std::uint64_t lock_off = s.data_offset + offsetof(collection_control, lock);
    unsigned char lock_bytes[lock_room] = {};
    const bool lock_read = read(lock_off, lock_bytes, sizeof lock_bytes) == sizeof lock_bytes;
    const lock_report lr = lock_read ? describe_lock(lock_bytes) : lock_report{};
    const bool in_progress = lr.held && lr.holder_state != liveness::dead && lr.problem.empty();
    if (std::uint64_t(l.records) * l.record_bytes > (std::uint64_t(64) << 20)) {
        r.notes.push_back(noun + ": a table of " + std::to_string(l.records * l.record_bytes) + " bytes, not checked");
    } else {
        std::vector<unsigned char> recs(l.records * l.record_bytes);
        std::vector<std::uint32_t> order(size);
        std::vector<std::uint32_t> index(l.index_slots);
        const std::size_t order_bytes = size * sizeof(std::uint32_t),
                          index_bytes = index.size() * sizeof(std::uint32_t);
        const std::uint64_t order_off = s.data_offset + l.order_off + view_buffer(c.view) * l.capacity * 4;
        if (read(s.data_offset + l.records_off, recs.data(), recs.size()) != recs.size() ||
            read(order_off, order.data(), order_bytes) != order_bytes ||
            read(s.data_offset + l.index_off, index.data(), index_bytes) != index_bytes) {
            r.problems.push_back("the " + noun + "'s table is cut short");
            return;
        }
        const auto rec_at = [&](std::uint32_t n) {
            collection_record x;
            std::memcpy(&x, recs.data() + std::size_t(n) * l.record_bytes, sizeof x);
            return x;
        };
        const auto key_at = [&](std::uint32_t n, const collection_record& x) {
            return std::string(reinterpret_cast<const char*>(recs.data()) + std::size_t(n) * l.record_bytes +
                                   sizeof(collection_record),
                               std::min<std::size_t>(x.key_bytes, collection_max_key));
        };
        std::vector<unsigned char> in(l.records, 0);
        std::map<std::string, std::size_t> keys;
        for (std::size_t i = 0; i < size; ++i) {
            const std::uint32_t n = order[i];
            const std::string where = kind == kind_dict ? "the entry at position " + std::to_string(i)
                                                        : "entry " + std::to_string(i);
            if (n >= l.records || in[n] != 0) {
                r.problems.push_back(where + " names record " + std::to_string(n) +
                                     (n >= l.records ? ", beyond the table" : ", which another entry names too"));
                continue;
            }
            in[n] = 1;
            const collection_record x = rec_at(n);
            std::string name;
            if (!collection_record_valid(x, kind, name)) {
                r.problems.push_back(where + " (record " + std::to_string(n) +
                                     ") is corrupt: no valid state, segment name, dtype or identity");
                continue;
            }
            std::string what = where;
            if (kind == kind_dict) {
                const std::string key = key_at(n, x);
                what = "entry '" + printable_key(key) + "'";
                if (collection_hash(key.data(), key.size()) != x.key_hash) {
                    r.problems.push_back(what + " has a key that does not match its hash");
                }
                if (!keys.emplace(key, n).second) {
                    r.problems.push_back(what + " is in the dict twice");
                }
            }
            const int err = names_file(location{s.directory, name}, file_id{x.dev, x.ino});
            if (err == ESTALE) {
                r.problems.push_back(what + ": its segment '" + name +
                                     "' names another file now (removed and created again)");
            } else if (err != 0) {
                r.problems.push_back(what + ": its segment '" + name + "' is gone (" +
                                     std::generic_category().message(err) + ")");
            }
        }
        std::size_t orphans = 0;
        for (std::uint32_t n = 0; n < l.records; ++n) {
            orphans += in[n] == 0 && rec_at(n).state != record_free ? 1 : 0;
        }
        if (orphans != 0) {
            const std::string text = std::to_string(orphans) + " record(s) hold segments outside the " + noun +
                                     " (a change that was not finished)";
            if (in_progress) {
                r.notes.push_back(text + ", while the lock is held: a change is under way");
            } else {
                r.problems.push_back(text + ": the next change or lookup repairs it, unlinking them");
            }
        }
        if (kind == kind_dict && c.dirty == 0) {
            // Every entry is found through the index from its key's hash, and the index names nothing else.
            const std::size_t mask = l.index_slots - 1;
            std::size_t indexed = 0;
            for (const std::uint32_t v : index) {
                indexed += v != 0 ? 1 : 0;
                if (v != 0 && (v > l.records || in[v - 1] == 0)) {
                    r.problems.push_back("the dict's index names record " + std::to_string(v - 1) +
                                         ", which is not an entry");
                    break;
                }
            }
            std::size_t unreachable = 0;
            for (const auto& kv : keys) {
                std::size_t i = static_cast<std::size_t>(rec_at(static_cast<std::uint32_t>(kv.second)).key_hash) & mask;
                bool found = false;
                for (std::size_t step = 0; step < l.index_slots && index[i] != 0; ++step, i = (i + 1) & mask) {
                    if (index[i] == kv.second + 1) {
                        found = true;
                        break;
                    }
                }
                unreachable += found ? 0 : 1;
            }
            if (unreachable != 0 || indexed != keys.size()) {
                r.problems.push_back("the dict's index disagrees with its entries (" + std::to_string(unreachable) +
                                     " entries it does not lead to, " + std::to_string(indexed) + " slots used for " +
                                     std::to_string(keys.size()) + " entries)");
            }
        }
    }
    if (c.dirty != 0 && !in_progress) {
        r.problems.push_back("a change was left unfinished (its process died, or the table was damaged): the next "
                             "change or lookup repairs it");
    }
    check_lock_at(r, lock_off, "the " + noun + "'s lock", read);
}

/// Checks the internals of an ndshm segment `s` (an ndshm::segment_info) into `s.internals` (see
/// ndshm::internals_report).
template <class Info, class Read>
void check_internals(Info& s, Read&& read)
{
    using segment_kind = kind_of<Info>;
    auto& r = s.internals;
    if (!s.trailer || s.trailer->version != trailer_version) {
        return;
    }
    try {
        switch (s.kind) {
        case segment_kind::queue:
            r.checked = true;
            check_queue(r, s, read);
            break;
        case segment_kind::channel:
            r.checked = true;
            check_channel(r, s, read);
            break;
        case segment_kind::object:
            r.checked = true;
            check_object(r, s, read);
            break;
        case segment_kind::dict:
        case segment_kind::list:
            r.checked = true;
            check_collection(r, s, read);
            break;
        case segment_kind::array:
            r.checked = true;
            break;
        default:
            return;
        }
        if (s.trailer->has_lock) {
            check_lock_at(r, s.trailer->offset + offsetof(trailer, lock), "the lock", read);
        }
    } catch (const error& e) {
        r.problems.push_back(std::string("the check could not finish: ") + e.what());
    }
}

} // namespace ndshm::detail

#endif
