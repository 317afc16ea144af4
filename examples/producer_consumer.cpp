// Two processes share one array by name, without copying it.
//
// The producer creates an array in shared memory, fills it and starts the consumer, a separate
// program (here: this same binary, run as `producer_consumer consume NAME`). The consumer attaches
// the array by name, reads it through xtensor and writes its answer into the same memory; the
// producer, which waited for it, sees that answer in its own mapping. Only the name travels.
#include <ndshm/ndshm.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

extern char** environ;

namespace {

/// Starts this program again as `argv0 consume NAME` and returns its exit code (-1 if it did not exit).
int run_consumer(const char* argv0, const std::string& name)
{
    std::string arg0 = argv0, command = "consume", arg2 = name;
    char* argv[] = {arg0.data(), command.data(), arg2.data(), nullptr};
    std::fflush(stdout); // keep this process's lines before the consumer's
    pid_t pid = 0;
    if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, environ) != 0) {
        return -1;
    }
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}

// [readme]
// Consumer: a separate process that knows nothing but the name.
int consume(const std::string& name)
{
    // Shape and dtype come from the segment; no data is copied.
    auto c = ndshm::shared_ndarray<double>::attach(name);
    const double sum = xt::sum(c.view())();
    const double mean = sum / static_cast<double>(c.size());
    std::printf("consumer (pid %d): attached '%s', %zu x %zu, sum %.1f, mean %.2f\n", static_cast<int>(::getpid()),
                name.c_str(), c.shape()[0], c.shape()[1], sum, mean);

    // Write back into the shared array: centre it in place. The producer sees this.
    c.view() -= mean;
    return 0;
}

// Producer: creates and fills the array, hands its name to the consumer and waits for it.
int produce(const char* argv0)
{
    auto a = ndshm::shared_ndarray<double>::create({1000, 3}); // zero-filled; owned by this process
    for (std::size_t i = 0; i < 1000; ++i) {
        for (std::size_t j = 0; j < 3; ++j) {
            a(i, j) = static_cast<double>(i + j);
        }
    }
    std::printf("producer (pid %d): created '%s', 1000 x 3 float64, a(999, 2) = %.1f\n", static_cast<int>(::getpid()),
                a.name().c_str(), a(999, 2));

    if (run_consumer(argv0, a.name()) != 0) {
        std::printf("producer: the consumer failed\n");
        return 1;
    }
    // The consumer's writes are already here: same physical memory, no message with the data.
    std::printf("producer: after the consumer, a(999, 2) = %.1f and the sum is %.1f\n", a(999, 2), xt::sum(a.view())());
    // [readme-end]

    // Check every element: the consumer subtracted the mean of i + j, 500.5.
    bool ok = true;
    for (std::size_t i = 0; i < 1000; ++i) {
        for (std::size_t j = 0; j < 3; ++j) {
            ok = ok && a(i, j) == static_cast<double>(i + j) - 500.5;
        }
    }
    std::printf("producer: every element is centred: %s\n", ok ? "yes" : "NO");
    std::printf("producer: done; the last handle unlinks '%s' when it goes out of scope\n", a.name().c_str());
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    try {
        if (argc == 3 && std::strcmp(argv[1], "consume") == 0) {
            return consume(argv[2]);
        }
        return produce(argv[0]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
