// A store: a directory of .npy arrays that each process of the machine gets from shared memory. The
// first process that asks for an array loads it; every other one attaches the same segment.
#include <ndshm/ndshm.hpp>
#include <ndshm/store.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace {

int run(const std::string& dir)
{
    // [readme]
    ndshm::store data(dir);                                               // a directory of .npy files
    data.put("weights", xt::xarray<float>(xt::ones<float>({2000, 256}))); // atomic write
    data.append("events", xt::xarray<double>{{1.0, 2.0}, {3.0, 4.0}});    // adds rows, atomic too
    auto weights = data.get<float>("weights");                            // this process loads it into shared memory

    std::vector<pid_t> workers;
    for (int w = 0; w < 4; ++w) {
        std::fflush(stdout);
        const pid_t pid = ::fork();
        if (pid < 0) {
            throw std::system_error(errno, std::generic_category(), "fork");
        }
        if (pid == 0) { // a worker: could as well be an unrelated process on the same machine
            int rc = 1;
            {
                ndshm::store mine(dir);
                auto w8 = mine.get<float>("weights"); // attaches the parent's segment: no copy
                const bool attached = mine.stats().attached == 1;
                auto first = mine.get<double>("events", ndshm::row_range{0, 1}); // one row of it
                std::printf("worker %d: weights %s (%s), sum %g; events row 0: %g %g\n", w, w8.name().c_str(),
                            attached ? "attached" : "loaded", static_cast<double>(xt::sum(w8.view())()), first(0, 0),
                            first(0, 1));
                rc = attached && w8.name() == weights.name() && first(0, 1) == 2.0 ? 0 : 1;
            } // the worker's store releases what it loaded (here: whichever row range it loaded first)
            std::fflush(stdout);
            ::_exit(rc);
        }
        workers.push_back(pid);
    }
    // [readme-end]
    int failed = 0;
    for (const pid_t pid : workers) {
        int status = 0;
        failed += ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    }
    std::printf("4 workers, one copy of the weights in memory: %s\n", failed == 0 ? "yes" : "NO");
    return failed == 0 ? 0 : 1;
}

} // namespace

int main()
{
    char tmpl[] = "/tmp/ndshm_example_store_XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
        std::perror("mkdtemp");
        return 1;
    }
    int rc = 1;
    try {
        rc = run(tmpl);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
    }
    std::error_code ec;
    std::filesystem::remove_all(tmpl, ec);
    return rc;
}
