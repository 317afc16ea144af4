// Deferring Ctrl-C (SIGINT), SIGTERM and SIGHUP around a critical section: an atomic save (write a
// temporary file, then rename it over the final name) that a signal must not cut in half.
#include <ndshm/ndshm.hpp>
#include <ndshm/uninterruptible.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

// Writes `text` to `path` atomically: readers see the old file or the new one, never a part of it.
void save(const std::string& path, const std::string& text)
{
    // [readme]
    {
        ndshm::uninterruptible guard; // SIGINT, SIGTERM and SIGHUP wait until the end of this scope
        const std::string tmp = path + ".saving";
        std::ofstream(tmp) << text;
        std::raise(SIGINT); // a Ctrl-C right now (simulated) does not interrupt the save
        std::rename(tmp.c_str(), path.c_str());
    } // the deferred SIGINT is delivered here, after the rename
    // [readme-end]
}

int run()
{
    std::signal(SIGINT, on_sigint);
    const std::string path = "/tmp/ndshm_example_uninterruptible_" + std::to_string(::getpid()) + ".txt";
    save(path, "complete\n");
    std::string line;
    std::ifstream(path) >> line;
    std::remove(path.c_str());
    std::printf("the SIGINT was %s, after the save; the file says '%s'\n", g_interrupted ? "delivered" : "lost",
                line.c_str());
    return g_interrupted == 1 && line == "complete" ? 0 : 1;
}

} // namespace

int main()
{
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
