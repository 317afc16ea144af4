// libFuzzer target: operating on shared state that something else scribbled on. Each input picks a
// queue, a channel or an array's lock, overwrites bytes of its control block, ring, slot records or
// lock (the rest stays as ndshm wrote it), then runs the timed, try_ and lock operations on it, and
// ndshm info's check. Every call must return (or throw an ndshm::error) within its bound: a watchdog
// thread aborts, and so fails the run, when one input takes longer than 5 seconds.
//
// Input: byte 0 picks the target (mod 3), byte 1 the operations, then 3-byte patches: offset (u16,
// little-endian, modulo the patched region) and the byte to store there.
#include <ndshm/channel.hpp>
#include <ndshm/inspect.hpp>
#include <ndshm/lock.hpp>
#include <ndshm/queue.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <stdlib.h>
#include <unistd.h>

namespace {

using clock_type = std::chrono::steady_clock;

std::atomic<std::int64_t> g_started{0}; // when the current input began (ns on the steady clock), 0: idle
std::string g_dir;

std::int64_t now_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}

void watchdog()
{
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const std::int64_t started = g_started.load();
        if (started != 0 && now_ns() - started > 5'000'000'000) {
            std::fprintf(stderr, "fuzz_operations watchdog: an operation hung (one input ran for over 5 s)\n");
            std::abort();
        }
    }
}

void cleanup() { std::filesystem::remove_all(g_dir); }

/// Applies the input's patches to `n` bytes at `p`.
void patch(unsigned char* p, std::size_t n, const std::uint8_t* data, std::size_t size)
{
    for (std::size_t i = 0; n != 0 && i + 3 <= size; i += 3) {
        const std::size_t off = (std::size_t(data[i]) | std::size_t(data[i + 1]) << 8) % n;
        p[off] = data[i + 2];
    }
}

/// Applies the input's patches to bytes [from, to) of the segment `name` in g_dir, through the file (as
/// a stray writer in another process would).
void patch_file(const std::string& name, std::size_t from, std::size_t to, const std::uint8_t* data, std::size_t size)
{
    std::FILE* f = std::fopen((g_dir + "/" + name).c_str(), "r+b");
    if (f == nullptr) {
        std::abort();
    }
    std::string region(to - from, '\0');
    if (std::fseek(f, static_cast<long>(from), SEEK_SET) != 0 ||
        std::fread(&region[0], 1, region.size(), f) != region.size()) {
        std::abort();
    }
    patch(reinterpret_cast<unsigned char*>(&region[0]), region.size(), data, size);
    if (std::fseek(f, static_cast<long>(from), SEEK_SET) != 0 ||
        std::fwrite(region.data(), 1, region.size(), f) != region.size()) {
        std::abort();
    }
    std::fclose(f);
}

/// Removes what an input left in g_dir (arrays a corrupt queue could not remove, say).
void sweep()
{
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(g_dir, ec)) {
        std::filesystem::remove(e.path(), ec);
    }
}

ndshm::options opts()
{
    ndshm::options o;
    o.directory = g_dir;
    o.ready_timeout = std::chrono::milliseconds(0);
    return o;
}

/// ndshm info's check of the segment (without its walk over every process's /proc entries, which is
/// slow and reads nothing of the segment).
void check_internals(const std::string& name)
{
    std::pair<std::uint64_t, std::uint64_t> id{0, 0};
    (void)ndshm::detail::inspect_location({g_dir, name}, opts(), id, nullptr, nullptr, true);
}

template <class F>
void guarded(F&& f)
{
    try {
        f();
    } catch (const ndshm::error&) {
        // Every refusal must be an ndshm exception; anything else escapes and fails the run.
    }
}

void fuzz_queue(std::uint8_t ops, const std::uint8_t* data, std::size_t size)
{
    auto q = ndshm::array_queue::create(2, opts());
    auto a = ndshm::shared_ndarray<double>::create({4}, opts());
    q.push(std::move(a));
    q.push(q.make<double>({4})); // a segment of the recycling pool, queued
    {
        auto b = q.make<double>({4}); // and one that goes back to the pool: free
    }
    // The control block, the ring and the pool records.
    patch_file(q.name(), 4096, 4096 + ndshm::detail::queue_data_bytes(2, 4), data, size);
    guarded([&] { check_internals(q.name()); });
    guarded([&] {
        auto other = ndshm::array_queue::attach(q.name(), opts());
        (void)other.size();
        guarded([&] { (void)other.front_dtype(); });
        guarded([&] { (void)other.try_pop<double>(); });
        guarded([&] { (void)other.try_pop_object(); });
        guarded([&] {
            auto m = other.make<double>({4});
            if ((ops & 4) != 0) {
                // Timed: an untimed push into a full queue (which a patched count can make it) waits for a
                // consumer forever, as documented, and this process is the only one.
                (void)other.push(std::move(m), std::chrono::milliseconds(1));
            }
        });
        guarded([&] { (void)other.pop<double>(std::chrono::milliseconds(1)); });
        guarded([&] { (void)other.try_push(ndshm::shared_ndarray<double>::create({2}, opts())); });
        guarded([&] {
            (void)other.push(ndshm::shared_ndarray<double>::create({2}, opts()), std::chrono::milliseconds(1));
        });
        if ((ops & 1) != 0) {
            guarded([&] { other.close(); });
        }
        if ((ops & 2) != 0) {
            guarded([&] { other.remove(); });
        }
    });
    guarded([&] { q.remove(); });
}

void fuzz_channel(std::uint8_t ops, const std::uint8_t* data, std::size_t size)
{
    auto ch = ndshm::channel<double>::create({4}, 2, opts());
    ch.publish(ch.loan());
    auto held = ch.loan(); // one slot published, one loaned by this process
    // The control block, the slot records and the ring, after the trailer.
    const std::size_t ctl = ndshm::detail::trailer_offset(4096 + 2 * 4 * sizeof(double)) +
                            sizeof(ndshm::detail::trailer);
    patch_file(ch.name(), ctl, ctl + ndshm::detail::channel_extra_bytes(2), data, size);
    guarded([&] { check_internals(ch.name()); });
    guarded([&] {
        auto other = ndshm::channel<double>::attach(ch.name(), opts());
        guarded([&] { auto s = other.try_receive(); });
        guarded([&] { auto s = other.receive(std::chrono::milliseconds(1)); });
        guarded([&] {
            auto s = other.try_loan();
            if (s && (ops & 1) != 0) {
                other.publish(std::move(s));
            }
        });
        guarded([&] { auto s = other.loan(std::chrono::milliseconds(1)); });
        (void)other.reclaimed();
        if ((ops & 2) != 0) {
            guarded([&] { other.close(); });
        }
    });
    held.release();
}

void fuzz_lock(std::uint8_t ops, const std::uint8_t* data, std::size_t size)
{
    auto a = ndshm::shared_ndarray<double>::create({4}, opts());
    ndshm::array_lock first(a);
    if ((ops & 1) != 0) {
        first.lock(); // a held lock (with this thread's record) is scribbled on too
    }
    auto* t = ndshm::detail::array_access::mapping_of(a)->get_trailer();
    patch(t->lock, sizeof t->lock, data, size);
    guarded([&] { check_internals(a.name()); });
    auto b = ndshm::shared_ndarray<double>::attach(a.name(), opts());
    ndshm::array_lock l(b);
    guarded([&] {
        if (l.try_lock()) {
            l.unlock();
        }
    });
    guarded([&] {
        if (l.try_lock_for(std::chrono::milliseconds(1))) {
            l.unlock();
        }
    });
    if ((ops & 2) != 0) {
        guarded([&] {
            l.lock(); // untimed: bounded by the limits below, or an error
            l.unlock();
        });
    }
    guarded([&] {
        if (first.owns_lock()) {
            first.unlock();
        }
    });
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    char tmpl[] = "/tmp/ndshm_fuzz_ops_XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
        std::abort();
    }
    g_dir = tmpl;
    std::atexit(cleanup);
    // Untimed waits give up fast here, so that a corrupt word naming a live thread is reported soon.
    ndshm::detail::lock_tuning().stopped_holder = std::chrono::milliseconds(50);
    ndshm::detail::lock_tuning().unrecorded_holder = std::chrono::milliseconds(50);
    std::thread(watchdog).detach();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size < 2) {
        return 0;
    }
    g_started = now_ns();
    switch (data[0] % 3) {
    case 0:
        fuzz_queue(data[1], data + 2, size - 2);
        break;
    case 1:
        fuzz_channel(data[1], data + 2, size - 2);
        break;
    default:
        fuzz_lock(data[1], data + 2, size - 2);
        break;
    }
    sweep();
    g_started = 0;
    return 0;
}
