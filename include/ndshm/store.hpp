/// @file store.hpp
/// `ndshm::store`: a directory of `.npy` arrays on disk, loaded once per machine into shared memory.
///
///     ndshm::store s("/data/run42");                          // created if missing
///     s.put("weights", w);                                    // atomic write of weights.npy
///     s.append("events", new_rows);                           // atomic, along axis 0
///     auto a = s.get<float>("weights");                       // first process loads, the rest attach
///     auto b = s.get<double>("events", ndshm::row_range{0, 1000});
///
/// `get` derives the segment's name from the store's directory, the key, the row range and the
/// file's identity (device, inode, size, mtime), so every process on the machine finds the same
/// segment, and a rewritten file gets a new one. When several processes ask at once, exactly one loads
/// (the others wait for it, for as long as it is alive, then attach); a loader that dies is replaced
/// by the next one. The arrays are read-only (`shared_ndarray<const T>`): they are shared by every
/// process of the machine.
///
/// A store owns what it loaded: its destruction (or close()) unlinks those segments; handles already
/// given out stay valid. Segments go to /dev/shm, or to the directory backend (options::directory
/// or $NDSHM_DIR, e.g. a job's tmpfs scratch space) with the same behaviour.
#ifndef NDSHM_STORE_HPP
#define NDSHM_STORE_HPP

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "detail/config.hpp"
#include "detail/file_io.hpp"
#include "detail/object_format.hpp"
#include "detail/segment_impl.hpp"
#include "detail/store_impl.hpp"
#include "detail/xtensor_compat.hpp"
#include "error.hpp"
#include "file.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

/// A directory of named arrays (`<key>.npy`), each loaded into shared memory once per machine.
/// Not copyable; movable. One store may be used from several threads.
class store {
public:
    /// What this store did in this process: arrays it loaded from disk into new segments, and arrays
    /// it found already loaded by another process and attached. Repeated gets of the same array in
    /// one store count once.
    struct counters {
        std::size_t loaded = 0;
        std::size_t attached = 0;
    };

    /// Opens the store at `dir`, creating the directory if it does not exist. `opt` applies to the
    /// segments it creates and attaches: mode, directory backend, allow_other_users, populate.
    /// @throws not_found, permission_denied, error
    NDSHM_DECL explicit store(const std::string& dir, const options& opt = {});
    store(store&&) noexcept = default;
    store& operator=(store&& o) noexcept
    {
        if (this != &o) {
            close();
            m_state = std::move(o.m_state);
        }
        return *this;
    }
    store(const store&) = delete;
    store& operator=(const store&) = delete;
    /// Closes the store (see close()).
    ~store() { close(); }

    /// The store's directory, canonical (absolute, without symlinks).
    const std::string& directory() const noexcept
    {
        static const std::string none;
        return m_state ? m_state->dir : none;
    }

    /// The file that holds `key`: `<directory>/<key>.npy`.
    /// @throws error if `key` is not 1 to 200 characters of [A-Za-z0-9._-] not starting with '.'
    NDSHM_DECL std::string path(const std::string& key) const;

    /// True if the store holds `key`.
    bool contains(const std::string& key) const
    {
        std::error_code ec;
        return std::filesystem::is_regular_file(path(key), ec);
    }

    /// The keys of every array in the store, sorted.
    NDSHM_DECL std::vector<std::string> keys() const;

    /// Saves `a` under `key`, replacing what was there; atomic (written beside and renamed over).
    /// Processes that got the old array keep it; new gets load the new one.
    template <class T>
    void put(const std::string& key, const shared_ndarray<T>& a)
    {
        const std::string file = path(key);
        const detail::file_lock lock(file, "store put"); // wait for an append in progress
        save_npy(file, a);
    }
    /// Saves an xtensor expression under `key` (see above).
    template <class E>
    void put(const std::string& key, const xt::xexpression<E>& e)
    {
        const std::string file = path(key);
        const detail::file_lock lock(file, "store put");
        save_npy(file, e);
    }

    /// Adds rows along axis 0 of the array under `key` (creating it if there is none): `rows` has
    /// k rows of the array's row shape, or is one row. Atomic, and safe against concurrent appends from
    /// other processes (each lands). The file is rewritten, so an append costs a copy of the file.
    /// @throws dtype_mismatch, error (a row shape that does not fit, a Fortran-order or 0-d array), and
    /// the errors of writing a file
    template <class T>
    void append(const std::string& key, const shared_ndarray<T>& rows)
    {
        if (rows.fortran_order() && rows.dimension() > 1) {
            append(key, rows.view());
            return;
        }
        const shape_type shape = rows.empty() ? shape_type{0} : rows.shape();
        detail::append_npy_rows(path(key), dtype_of<T>, shape, rows.data(), rows.size() * sizeof(T), "store append");
    }
    /// Adds the rows of an xtensor expression (see above).
    template <class E>
    void append(const std::string& key, const xt::xexpression<E>& rows)
    {
        const std::string file = path(key);
        detail::with_contiguous(rows, true,
                                [&](dtype t, const shape_type& shape, bool, const void* data, std::size_t n) {
                                    detail::append_npy_rows(file, t, shape, data, n, "store append");
                                });
    }

    /// The array under `key` (rows [rows.begin, rows.end) of it, by default all) in shared memory,
    /// read-only. The first process on the machine that asks for it loads it (reading only those rows
    /// from disk); every other process attaches the same segment. The store keeps what it loaded
    /// until it is closed.
    /// @throws not_found (no such key), dtype_mismatch, format_error (a corrupt file), out_of_space,
    /// permission_denied (a segment of that name that belongs to another user), error
    template <class T>
    shared_ndarray<const T> get(const std::string& key, row_range rows = {})
    {
        const std::string op = "store get";
        const std::string file = path(key);
        const detail::npy_file f = detail::open_npy_file(file, op);
        detail::check_file_dtype<std::remove_const_t<T>>(op, file, f.info.type);
        const detail::row_slice s = detail::resolve_rows(f.info, rows.begin, rows.end, op, file);
        const std::string name = detail::store_segment_name(m_state->dir, key, f.st, s.begin, s.end);
        std::lock_guard<std::mutex> g(m_state->mutex);
        auto it = m_state->cache.find(name);
        if (it == m_state->cache.end()) {
            it = m_state->cache.emplace(name, acquire(f, s, name)).first;
        }
        return detail::array_access::make<const T>(it->second.map, it->second.info);
    }

    /// Counts of what this store loaded and attached.
    counters stats() const
    {
        check_open("store stats");
        std::lock_guard<std::mutex> g(m_state->mutex);
        return m_state->stats;
    }

    /// Releases what the store loaded: unlinks those segments (processes that have them keep their
    /// mappings; later gets load them again) and drops the store's handles. Handles returned by get()
    /// stay valid. In a forked child, unlinks nothing of the parent's. Idempotent.
    NDSHM_DECL void close() noexcept;

private:
    struct entry {
        std::shared_ptr<detail::mapping> map;
        detail::npy_info info;
        bool loaded = false;
    };
    struct state {
        std::string dir;
        options opt;
        std::mutex mutex;
        std::map<std::string, entry> cache; // by segment name
        counters stats;
    };

    NDSHM_DECL void check_open(const std::string& op) const;

    NDSHM_DECL static void check_key(const std::string& op, const std::string& key);

    /// Attaches segment `name` if it is published and holds the rows `s`.
    NDSHM_DECL bool try_attach(const std::string& name, const detail::row_slice& s, entry& e) const;

    /// Finds or loads the segment of rows `s` of file `f`.
    NDSHM_DECL entry acquire(const detail::npy_file& f, const detail::row_slice& s, const std::string& name);

    std::unique_ptr<state> m_state;
};

} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm {

store::store(const std::string& dir, const options& opt) : m_state(std::make_unique<state>())
{
    const std::string op = "open store";
    if (dir.empty()) {
        detail::raise<error>(op, dir, "the directory is empty", "give the store's directory",
                             detail::errno_code(EINVAL));
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (!ec) {
        m_state->dir = std::filesystem::canonical(dir, ec).string();
    }
    if (ec) {
        detail::raise_file_errno(op, dir, ec.value(), "create or resolve the directory");
    }
    if (!std::filesystem::is_directory(m_state->dir, ec)) {
        detail::raise<error>(op, dir, "not a directory", "give the path of a directory", detail::errno_code(ENOTDIR));
    }
    m_state->opt = opt;
    m_state->opt.name.clear();
}

std::string store::path(const std::string& key) const
{
    check_open("store path");
    check_key("store path", key);
    return m_state->dir + "/" + key + ".npy";
}

std::vector<std::string> store::keys() const
{
    check_open("store keys");
    std::vector<std::string> out;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(m_state->dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string file = it->path().filename().string();
        if (file.size() > 4 && file.compare(file.size() - 4, 4, ".npy") == 0 && file[0] != '.' &&
            it->is_regular_file(ec)) {
            out.push_back(file.substr(0, file.size() - 4));
        }
    }
    if (ec) {
        detail::raise_file_errno("store keys", m_state->dir, ec.value(), "list the directory");
    }
    std::sort(out.begin(), out.end());
    return out;
}

void store::close() noexcept
{
    if (!m_state) {
        return;
    }
    try {
        std::lock_guard<std::mutex> g(m_state->mutex);
        for (auto& cached : m_state->cache) {
            // Like the owning handle's own release: only the process that loaded it, once, and only
            // while the name still names the segment it loaded.
            const auto& m = *cached.second.map;
            if (cached.second.loaded) {
                detail::unlink_if_owned(m.loc(), m.id());
            }
        }
        m_state->cache.clear();
    } catch (...) { // a mutex error: nothing sensible to do in a destructor
    }
}

void store::check_open(const std::string& op) const
{
    if (!m_state) {
        detail::raise<error>(op, "", "the store was moved from", "use the store it was moved to",
                             detail::errno_code(EINVAL));
    }
}

void store::check_key(const std::string& op, const std::string& key)
{
    bool ok = !key.empty() && key.size() <= 200 && key[0] != '.';
    for (const char c : key) {
        ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-');
    }
    if (!ok) {
        std::string shown; // the key as the message shows it: control characters as '?'
        for (const char c : key.substr(0, 64)) {
            shown += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
        }
        detail::raise<error>(op, shown, "invalid key",
                             "use 1 to 200 characters from [A-Za-z0-9._-], not starting with '.'",
                             detail::errno_code(EINVAL));
    }
}

bool store::try_attach(const std::string& name, const detail::row_slice& s, entry& e) const
{
    options o = m_state->opt;
    o.read_only = true;
    o.ready_timeout = std::chrono::milliseconds(0);
    try {
        e.map = detail::attach_array_segment(name, o, e.info);
    } catch (const not_found&) {
        return false;
    } catch (const format_error&) {
        return false; // still being loaded, or left damaged: the load lock sorts it out
    }
    return e.info.type == s.info.type && e.info.shape == s.info.shape && e.info.fortran_order == s.info.fortran_order;
}

store::entry store::acquire(const detail::npy_file& f, const detail::row_slice& s, const std::string& name)
{
    const std::string op = "store get";
    entry e;
    if (try_attach(name, s, e)) {
        ++m_state->stats.attached;
        return e;
    }
    const detail::location loc{detail::backend_dir(m_state->opt), name};
    const detail::load_lock lock(loc, op); // waits while another process loads it
    if (try_attach(name, s, e)) {
        ++m_state->stats.attached;
        return e;
    }
    // Holding the lock, no one else is loading: whatever is under the name was left unfinished or
    // damaged by a loader that died.
    (void)detail::unlink_location(loc);
    options o = m_state->opt;
    o.name = name;
    o.read_only = false;
    e.map = detail::create_array_segment(o, f.info.type, s.info.shape, f.info.fortran_order, op, e.info);
    detail::prefault(e.map->base() + e.info.data_offset, e.info.nbytes, true);
    detail::read_rows(f.fd.get(), f.info, s, e.map->base() + e.info.data_offset, op, f.path);
    e.map->publish();
    e.loaded = true;
    ++m_state->stats.loaded;
    return e;
}

} // namespace ndshm
#endif // NDSHM_DEFINITIONS

#endif
