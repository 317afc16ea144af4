// Stress: several processes create, attach, read, write and unlink segments concurrently for a
// bounded number of iterations. Every array's contents are a function of who made it and when, so a
// reader checks all of it; the parent checks each worker's running checksums, and that no segment and
// no fd is left anywhere.
#include <ndshm/all.hpp>

#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <deque>
#include <random>
#include <string>
#include <vector>

using ndshm::shared_ndarray;

namespace {

constexpr std::size_t workers = 4;
constexpr std::uint64_t iterations = 1000;
constexpr std::size_t keep = 3; // each worker keeps its last few arrays alive for the others to read

std::uint64_t mix(std::uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/// Number of elements and element k of worker w's array number i.
std::size_t length(std::size_t w, std::uint64_t i) { return 1 + mix(w * 1000003 + i) % 20000; }
std::uint64_t value(std::size_t w, std::uint64_t i, std::size_t k) { return mix((w << 48) ^ (i << 24) ^ k); }

std::string array_name(pid_t parent, std::size_t w, std::uint64_t i)
{
    return "ndshm_test_stress_" + std::to_string(parent) + "_" + std::to_string(w) + "_" + std::to_string(i);
}

/// Sum of worker w's array number i (wrapping).
std::uint64_t checksum(std::size_t w, std::uint64_t i)
{
    std::uint64_t sum = 0;
    for (std::size_t k = 0; k < length(w, i); ++k) {
        sum += value(w, i, k);
    }
    return sum;
}

/// Checks a whole array against what worker w wrote into its array number i; returns false on the
/// first difference.
template <class T>
bool intact(const shared_ndarray<T>& a, std::size_t w, std::uint64_t i)
{
    if (a.dimension() != 1 || a.size() != length(w, i)) {
        return false;
    }
    for (std::size_t k = 0; k < a.size(); ++k) {
        if (a.data()[k] != value(w, i, k)) {
            return false;
        }
    }
    return true;
}

/// One worker: returns 0 if every read was intact and nothing leaked, else a code that says what.
int work(std::size_t w, pid_t parent, shared_ndarray<std::uint64_t> progress, shared_ndarray<std::uint64_t> sums)
{
    const int fds = test_util::open_fds();
    std::mt19937_64 rng(mix(w + 77));
    std::deque<shared_ndarray<std::uint64_t>> mine;
    std::size_t checked = 0;
    for (std::uint64_t i = 0; i < iterations; ++i) {
        // Create and publish: readers can attach it from now on, and see all of it.
        std::vector<std::uint64_t> data(length(w, i));
        for (std::size_t k = 0; k < data.size(); ++k) {
            data[k] = value(w, i, k);
        }
        ndshm::options o;
        o.name = array_name(parent, w, i);
        mine.push_back(shared_ndarray<std::uint64_t>::from_array(data.data(), {data.size()}, o));
        __atomic_store_n(progress.data() + w, i + 1, __ATOMIC_RELEASE);
        // Write: this worker's running checksum, in a slot of an array all workers share.
        sums(w) += checksum(w, i);
        // Drop the oldest: its owner handle unlinks the name, while readers may still map it.
        if (mine.size() > keep) {
            mine.pop_front();
        }
        // Read another worker's recent array, whichever way; it may be gone already.
        const std::size_t v = (w + 1 + rng() % (workers - 1)) % workers;
        const std::uint64_t done = __atomic_load_n(progress.data() + v, __ATOMIC_ACQUIRE);
        if (done == 0) {
            continue;
        }
        const std::uint64_t j = done - 1 - std::min<std::uint64_t>(done - 1, rng() % (keep + 2));
        const std::string name = array_name(parent, v, j);
        try {
            bool ok = false;
            switch (rng() % 3) {
            case 0:
                ok = intact(shared_ndarray<std::uint64_t>::attach(name), v, j);
                break;
            case 1:
                ok = intact(shared_ndarray<const std::uint64_t>::attach(name), v, j);
                break;
            default:
                ok = intact(ndshm::attach_any(name).as<const std::uint64_t>(), v, j);
                break;
            }
            if (!ok) {
                std::fprintf(stderr, "worker %zu: %s is corrupt\n", w, name.c_str());
                return 2;
            }
            ++checked;
        } catch (const ndshm::not_found&) {
            // unlinked by its owner meanwhile
        }
    }
    mine.clear();
    progress.reset();
    sums.reset();
    if (ndshm::free_session() != 0) {
        return 3; // everything owned was already unlinked by its handle
    }
    if (test_util::open_fds() != fds) {
        return 4;
    }
    return checked > 0 ? 0 : 5;
}

} // namespace

TEST_CASE("processes creating, attaching, writing, reading and unlinking at once corrupt and leak nothing",
          "[stress][multiprocess]")
{
    const pid_t parent = ::getpid();
    const std::string prefix = "ndshm_test_stress_" + std::to_string(parent) + "_";
    const int fds = test_util::open_fds();
    {
        auto progress = shared_ndarray<std::uint64_t>::create({workers});
        auto sums = shared_ndarray<std::uint64_t>::create({workers});
        std::vector<pid_t> pids;
        for (std::size_t w = 0; w < workers; ++w) {
            pids.push_back(test_util::fork_child([&, w] { return work(w, parent, progress, sums); }));
        }
        for (const pid_t pid : pids) {
            tools_util::child_guard child(pid);
            const auto st = child.wait();
            CHECK(st.exited);
            CHECK(st.code == 0);
        }
        for (std::size_t w = 0; w < workers; ++w) {
            std::uint64_t want = 0;
            for (std::uint64_t i = 0; i < iterations; ++i) {
                want += checksum(w, i);
            }
            CHECK(progress(w) == iterations);
            CHECK(sums(w) == want);
        }
    }
    CHECK(test_util::shm_entries(prefix).empty());
    CHECK(test_util::open_fds() == fds);
}
