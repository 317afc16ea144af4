// Shared dictionaries and lists: named, mutable collections of shared arrays. Any process of the user
// that knows the name reads and changes them; every change is atomic, and entries are attached without
// copying, their dtype checked.
//
// The parent puts parameters into a dict and forks three workers. Each worker reads the weights from
// the dict (zero copy), appends its result to a list and records itself in the dict. The parent then
// copies the results out into its own memory. The parent owns both containers: their last handle in
// it removes them with every entry.
#include <ndshm/dict.hpp>
#include <ndshm/list.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>

namespace {

// [readme]
// A worker: any process that knows the two names would do.
int work(const std::string& params_name, const std::string& results_name, int w)
{
    auto params = ndshm::shared_dict::attach(params_name);
    auto results = ndshm::shared_list::attach(results_name);
    auto weights = params.get<const float>("weights");          // zero copy; a wrong dtype throws
    results.append(weights.view() * static_cast<float>(w + 1)); // one atomic change
    params.assign("done_" + std::to_string(w), xt::xarray<int>{w});
    return 0;
}
// [readme-end]

int run()
{
    // [readme]
    auto params = ndshm::shared_dict::create(); // named, 0600, owned by this process
    params.assign("weights", xt::xarray<float>{{1, 2}, {3, 4}});
    auto results = ndshm::shared_list::create();

    for (int w = 0; w < 3; ++w) {
        if (::fork() == 0) {
            int code = 1;
            try {
                code = work(params.name(), results.name(), w);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "worker %d: %s\n", w, e.what());
            }
            ::_exit(code); // a forked child's copies of the handles never remove anything anyway
        }
    }
    int status = 0, failed = 0;
    while (::wait(&status) > 0) {
        failed += WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    }

    std::printf("%zu results; keys:", results.size());
    for (const std::string& key : params.keys()) { // insertion order
        std::printf(" %s", key.c_str());
    }
    float total = 0;
    for (const xt::xarray<float>& a : results.copy<float>()) { // copied out of shared memory
        total += xt::sum(a)();
    }
    std::printf("\nsum of all results: %g\n", static_cast<double>(total)); // 10 * (1 + 2 + 3) = 60
    // [readme-end]
    const bool ok = failed == 0 && results.size() == 3 && params.size() == 4 && total == 60.0f &&
                    params.get<int>("done_2")(0) == 2;
    std::printf("everything as expected: %s\n", ok ? "yes" : "NO");
    return ok ? 0 : 1;
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
