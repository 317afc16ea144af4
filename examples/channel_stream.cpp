// A producer streams frames to a consumer through a loan/publish channel: a fixed pool of slots in
// shared memory, faulted in once, so the steady stream costs no page fault and no copy.
#include <ndshm/channel.hpp>

#include <xtensor/xmath.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>

namespace {

constexpr std::size_t frames = 100;

// [readme]
// Consumer (here a forked child; any process of the user can attach by name).
int consume(const std::string& name)
{
    auto in = ndshm::channel<float>::attach(name);
    std::size_t count = 0;
    bool ok = true;
    while (auto frame = in.receive()) { // empty once the producer closed the channel and all is read
        const float expected = static_cast<float>(count++);
        ok = ok && xt::amax(frame.view())() == expected; // a read-only view of the slot, no copy
    }                                                    // leaving the scope releases the slot back to the pool
    std::printf("consumer: %zu frames, all intact: %s\n", count, ok ? "yes" : "NO");
    std::fflush(stdout);
    return ok && count == frames ? 0 : 1;
}

int produce()
{
    // Four slots of 480 x 640 float32: up to four frames in flight, then loan() waits.
    auto out = ndshm::channel<float>::create({480, 640}, 4);
    std::fflush(stdout);
    const pid_t consumer = ::fork();
    if (consumer == 0) {
        ::_exit(consume(out.name()));
    }
    for (std::size_t i = 0; i < frames; ++i) {
        auto frame = out.loan();              // a free slot, as a shared_ndarray
        frame.view() = static_cast<float>(i); // write the frame in place
        out.publish(std::move(frame));        // hand it over: no copy
    }
    out.close();
    int status = 0;
    ::waitpid(consumer, &status, 0);
    std::printf("producer: %zu frames of 480 x 640 through %zu slots of '%s'\n", frames, out.slots(),
                out.name().c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
// [readme-end]

} // namespace

int main()
{
    try {
        return produce();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "channel_stream: %s\n", e.what());
        return 1;
    }
}
