// A steady stream through an array queue on recycled segments: the producer's make() reuses the
// segment that the consumer let go, with its mapping kept on both sides, so after the first few items
// no handoff maps, faults in, unmaps or unlinks anything.
#include <ndshm/queue.hpp>
#include <ndshm/shared_ndarray.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

namespace {

constexpr std::size_t n = 1 << 20; // 4 MiB of uint32 per item
constexpr std::uint32_t items = 50;

void fill(std::uint32_t* p, std::size_t count, std::uint32_t k)
{
    for (std::size_t i = 0; i < count; ++i) {
        p[i] = k + static_cast<std::uint32_t>(i);
    }
}

/// Forks the consumer: it pops every item, checks it and lets it go, which returns its segment to the
/// queue for the producer's next make().
pid_t start_consumer(const std::string& name)
{
    std::fflush(stdout);
    const pid_t pid = ::fork();
    if (pid != 0) {
        return pid;
    }
    int bad = 0;
    try {
        auto in = ndshm::array_queue::attach(name);
        for (std::uint32_t k = 0; k < items; ++k) {
            auto b = in.pop<std::uint32_t>(); // owned here; when b goes, the segment returns to the queue
            bad += b.size() != n || b(0) != k || b(n - 1) != k + n - 1;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        bad = 1;
    }
    ::_exit(bad == 0 ? 0 : 1);
}

int run()
{
    // [readme]
    auto q = ndshm::array_queue::create(4);
    const pid_t consumer = start_consumer(q.name()); // pops, reads, lets go: the segment returns to q
    for (std::uint32_t k = 0; k < items; ++k) {
        auto a = q.make<std::uint32_t>({n}); // a recycled segment once the stream runs
        fill(a.data(), n, k);                // write all of it: a reused segment holds an earlier item
        q.push(std::move(a));
    }
    // [readme-end]
    int status = 0;
    ::waitpid(consumer, &status, 0);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::printf("%u items of 4 MiB, %llu made in a reused segment, %zu segments in the pool: %s\n", items,
                static_cast<unsigned long long>(q.reused()), q.recycled(), ok ? "all intact" : "FAILED");
    return ok && q.reused() > 0 ? 0 : 1;
}

} // namespace

int main()
{
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
