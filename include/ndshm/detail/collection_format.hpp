/// @file detail/collection_format.hpp
/// The layout of a shared dictionary's or list's segment (dict.hpp, list.hpp) and the checks applied
/// to it. Nothing here includes xtensor: inspect.hpp reads the table with it.
///
/// A container is a segment like an array's: a `.npy` header (a 1-d uint8 array, so NumPy and `ndshm
/// ls` can read it), the data at byte 4096, then ndshm's trailer with kind `kind_dict` or `kind_list`.
/// Every entry is an ordinary array segment of its own; the container's data is only a table of them:
///
///     control block (256 bytes, with ndshm's lock)
///     records       2 x capacity records: each one entry's segment (name, identity, dtype) and, in a
///                   dict, its key (dict records are 384 bytes, list records 128)
///     order         two buffers of capacity record numbers: the entries in order (a list's order, a
///                   dict's insertion order); `view` says which buffer is current and how many it holds
///     index         a dict's hash index: index_slots record numbers + 1 (0: empty), linear probing
///
/// How a change stays atomic under kill -9: every change happens under the lock, and becomes visible
/// through one atomic store, of `view`. New entries go into free records, which nothing refers to,
/// and are marked filled before their segments are handed to the container; the new order goes into
/// the other buffer; then `view` switches to it. Afterwards the records that left are unlinked and
/// freed and the index is brought up to date. `dirty` is 1 throughout. Whoever takes the lock next and
/// finds `dirty` set repairs what a dead holder left: a record that is filled but not in the current
/// order is unlinked (identity-checked) and freed, and the index is rebuilt from the order. Nothing
/// half-inserted ever appears, and nothing removed lingers.
#ifndef NDSHM_DETAIL_COLLECTION_FORMAT_HPP
#define NDSHM_DETAIL_COLLECTION_FORMAT_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "../dtype.hpp"
#include "config.hpp"
#include "segment_names.hpp"
#include "sync.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

inline constexpr char collection_magic[8] = {'N', 'D', 'S', 'H', 'M', 'C', 'O', '1'};
inline constexpr std::uint32_t collection_version = 1;
/// The largest capacity of a dict or list (record numbers and sizes fit 32 bits with room to spare).
inline constexpr std::size_t collection_max_capacity = std::size_t(1) << 20;
/// The longest dict key, in bytes (any bytes).
inline constexpr std::size_t collection_max_key = 255;
/// Room for an entry's segment name (generated names are at most 30 characters).
inline constexpr std::size_t collection_name_room = 64;

enum : std::uint32_t { record_free = 0, record_filled = 1 };

/// The control block at the start of the container's data. Every field is checked before use.
struct collection_control {
    char magic[8];               //   0 "NDSHMCO1"
    std::uint32_t version;       //   8 collection_version
    std::uint32_t kind;          //  12 kind_dict or kind_list, as in the trailer
    std::uint32_t record_bytes;  //  16 collection_record_bytes(kind)
    std::uint32_t entry_mode;    //  20 permission bits of entry segments (the container's options::mode)
    std::uint64_t capacity;      //  24 most entries, 1..collection_max_capacity
    std::uint64_t records;       //  32 records in the pool: 2 x capacity
    std::uint64_t index_slots;   //  40 a dict's index: a power of two >= 2 x capacity; a list: 0
    std::uint64_t view;          //  48 the commit word: size | current buffer << 32 | generation << 33
    std::uint32_t dirty;         //  56 1 while a change is under way (or was, by a holder that died)
    std::uint32_t closed;        //  60 1 once its owner removed it
    std::uint64_t changes;       //  64 changes committed so far
    std::uint64_t recoveries;    //  72 changes that a holder left half done, repaired by the next one
    std::uint64_t free_hint;     //  80 where the search for a free record starts
    unsigned char reserved1[40]; //  88 zero
    lock_area lock;              // 128 ndshm's lock (sync.hpp), guarding everything in the table
    unsigned char reserved2[64]; // 192 zero
};
static_assert(sizeof(collection_control) == 256, "the collection control block is 256 bytes");

/// One entry's record: its segment (name, identity, size), dtype and, in a dict, its key (the
/// collection_max_key + 1 bytes that follow the record).
struct collection_record {
    std::uint32_t state;             //   0 record_free or record_filled (atomic)
    std::uint32_t dtype;             //   4 ndshm::dtype as an integer
    std::uint32_t key_bytes;         //   8 length of the key (a dict), 0 (a list)
    std::uint32_t name_bytes;        //  12 length of the segment name, 1..63
    std::uint64_t key_hash;          //  16 collection_hash of the key (a dict)
    std::uint64_t dev;               //  24 the entry segment's device,
    std::uint64_t ino;               //  32 inode,
    std::uint64_t created_ns;        //  40 and creation time in its trailer
    std::uint64_t segment_bytes;     //  48 the entry segment's size
    std::uint64_t data_bytes;        //  56 its array's bytes
    char name[collection_name_room]; //  64 the segment name, NUL-padded
};
static_assert(sizeof(collection_record) == 128, "a collection record is 128 bytes");

/// Bytes of one record in a container of `kind`.
constexpr std::size_t collection_record_bytes(std::uint32_t kind) noexcept
{
    return sizeof(collection_record) + (kind == kind_dict ? collection_max_key + 1 : 0);
}

/// Where the parts of a container's table lie, relative to the start of its data.
struct collection_layout {
    std::size_t capacity = 0;
    std::size_t records = 0;
    std::size_t record_bytes = 0;
    std::size_t index_slots = 0;
    std::size_t records_off = 0;
    std::size_t order_off = 0; ///< buffer b starts at order_off + b * capacity * 4
    std::size_t index_off = 0;
    std::size_t total = 0; ///< data bytes
};

/// The layout of a container of `kind` holding up to `capacity` entries (1..collection_max_capacity).
NDSHM_DECL collection_layout make_collection_layout(std::uint32_t kind, std::size_t capacity) noexcept;

inline std::uint64_t view_pack(std::uint64_t size, std::uint64_t buffer, std::uint64_t generation) noexcept
{
    return size | buffer << 32 | (generation & 0x7fffffffu) << 33;
}
inline std::uint64_t view_size(std::uint64_t v) noexcept { return v & 0xffffffffu; }
inline std::uint64_t view_buffer(std::uint64_t v) noexcept { return v >> 32 & 1u; }
inline std::uint64_t view_generation(std::uint64_t v) noexcept { return v >> 33; }

/// FNV-1a, 64 bits: the hash of a dict key.
inline std::uint64_t collection_hash(const char* p, std::size_t n) noexcept
{
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::size_t i = 0; i < n; ++i) {
        h ^= static_cast<unsigned char>(p[i]);
        h *= 0x100000001b3ull;
    }
    return h;
}

/// "dict" or "list".
constexpr const char* collection_noun(std::uint32_t kind) noexcept { return kind == kind_dict ? "dict" : "list"; }

/// Why the control block `c` (a copy) cannot belong to a container of `kind` whose data holds
/// `data_bytes` bytes, or an empty string. Fills `l` with its layout when it is usable.
NDSHM_DECL std::string collection_control_problem(const collection_control& c, std::uint32_t kind,
                                                  std::size_t data_bytes, collection_layout& l);

/// True if `r` (a copy of a filled record's 128 bytes; `key` its key bytes, if a dict's) describes an
/// entry: a segment name of [A-Za-z0-9._-] not starting with '.', NUL-padded, a known dtype, a file
/// identity and a key that fits. Records come from shared memory: untrusted.
NDSHM_DECL bool collection_record_valid(const collection_record& r, std::uint32_t kind, std::string& name);

/// A key as messages show it: printable ASCII as is, other bytes as \xNN, cut after 80 characters.
NDSHM_DECL std::string printable_key(const std::string& key);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

collection_layout make_collection_layout(std::uint32_t kind, std::size_t capacity) noexcept
{
    collection_layout l;
    l.capacity = capacity;
    l.records = 2 * capacity;
    l.record_bytes = collection_record_bytes(kind);
    if (kind == kind_dict) {
        l.index_slots = 2;
        while (l.index_slots < 2 * capacity) {
            l.index_slots *= 2;
        }
    }
    l.records_off = sizeof(collection_control);
    l.order_off = l.records_off + l.records * l.record_bytes;
    l.index_off = l.order_off + 2 * capacity * sizeof(std::uint32_t);
    l.total = l.index_off + l.index_slots * sizeof(std::uint32_t);
    return l;
}

std::string collection_control_problem(const collection_control& c, std::uint32_t kind, std::size_t data_bytes,
                                       collection_layout& l)
{
    if (std::memcmp(c.magic, collection_magic, sizeof c.magic) != 0 || c.version != collection_version) {
        return "unknown table format (magic or version)";
    }
    if (c.kind != kind || c.record_bytes != collection_record_bytes(kind)) {
        return "its control block names another kind of container or record size";
    }
    if (c.capacity == 0 || c.capacity > collection_max_capacity) {
        return "its capacity (" + std::to_string(c.capacity) + ") is out of range";
    }
    l = make_collection_layout(kind, static_cast<std::size_t>(c.capacity));
    if (c.records != l.records || c.index_slots != l.index_slots || l.total > data_bytes) {
        return "its capacity (" + std::to_string(c.capacity) + ") does not fit its " + std::to_string(data_bytes) +
               " bytes";
    }
    if ((c.entry_mode & ~0777u) != 0) {
        return "its entry mode " + std::to_string(c.entry_mode) + " has bits outside 0777";
    }
    if (view_size(c.view) > c.capacity) {
        return "it says it holds " + std::to_string(view_size(c.view)) + " entries, more than its capacity " +
               std::to_string(c.capacity);
    }
    if (c.dirty > 1 || c.closed > 1) {
        return "its state words are out of range (dirty " + std::to_string(c.dirty) + ", closed " +
               std::to_string(c.closed) + ")";
    }
    return {};
}

bool collection_record_valid(const collection_record& r, std::uint32_t kind, std::string& name)
{
    if (r.state != record_filled || r.name_bytes == 0 || r.name_bytes >= collection_name_room || r.ino == 0 ||
        r.dtype > static_cast<std::uint32_t>(ndshm::dtype::complex128) || r.segment_bytes < 4096 + 256 ||
        r.data_bytes > r.segment_bytes) {
        return false;
    }
    if (kind == kind_dict ? r.key_bytes > collection_max_key : r.key_bytes != 0) {
        return false;
    }
    if (r.name[0] == '.') {
        return false;
    }
    for (std::size_t i = 0; i < collection_name_room; ++i) {
        const char c = r.name[i];
        if (i >= r.name_bytes) {
            if (c != '\0') {
                return false;
            }
            continue;
        }
        if (!segment_name_char(c)) {
            return false;
        }
    }
    name.assign(r.name, r.name_bytes);
    return true;
}

std::string printable_key(const std::string& key)
{
    std::string out;
    for (const char ch : key) {
        if (out.size() >= 80) {
            out += "...";
            break;
        }
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            static const char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
