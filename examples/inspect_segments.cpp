// Inspecting segments from C++: the API that the `ndshm` command-line tool (ls, info, gc) is built on.
// A forked child creates an array and dies without cleaning up, as a crashed process would; gc finds
// its segment and removes it, and leaves the live one alone.
#include <ndshm/ndshm.hpp>
#include <ndshm/inspect.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

int main()
{
    // A private directory backend, so that gc below only sees this example's segments.
    char dir[] = "/tmp/ndshm_example_XXXXXX";
    if (::mkdtemp(dir) == nullptr) {
        return 1;
    }
    int status = 1;
    {
        ndshm::options opt;
        opt.directory = dir;
        auto a = ndshm::shared_ndarray<double>::create({1000, 3}, opt);
        std::fflush(stdout);
        const pid_t child = ::fork();
        if (child == 0) {
            auto lost = ndshm::shared_ndarray<float>::create({64}, opt);
            ::_exit(0); // no destructor runs: the segment stays behind, its creator dead
        }
        int ws = 0;
        ::waitpid(child, &ws, 0);

        // [readme]
        for (const ndshm::segment_info& s : ndshm::list_segments(opt)) { // this user's ndshm_ segments
            std::printf("%s: %s %s, %llu bytes, creator %s\n", s.name.c_str(), ndshm::kind_name(s.kind),
                        ndshm::dtype_name(s.dtype), static_cast<unsigned long long>(s.bytes),
                        ndshm::status_name(s.creator));
        }
        const ndshm::segment_info info = ndshm::inspect(a.name(), opt); // reads it, never maps it
        std::printf("%s: created by pid %llu, persisted: %s, open or mapped by %zu process(es)\n", info.name.c_str(),
                    static_cast<unsigned long long>(info.trailer->creator_pid), info.persisted() ? "yes" : "no",
                    info.users.size());
        for (const ndshm::gc_entry& e : ndshm::gc(opt)) { // ndshm::gc(opt, true): a dry run
            std::printf("gc removed %s: %s\n", e.segment.name.c_str(), e.reason.c_str());
        }
        // [readme-end]
        const auto left = ndshm::list_segments(opt);
        status = left.size() == 1 && left[0].name == a.name() ? 0 : 1;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return status;
}
