// A separate program for tests of unrelated processes: it attaches a segment by name, as any other
// program of the same user would.
//
//   ndshm_peer double-it NAME      attach shared_ndarray<double>, check a[i] == i, set a[i] = 2 i
//   ndshm_peer expect KIND NAME    attach and exit 0 only if it throws ndshm::KIND
#include <ndshm/all.hpp>

#include <cstdio>
#include <string>

namespace {

int double_it(const std::string& name)
{
    auto a = ndshm::shared_ndarray<double>::attach(name);
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a.data()[i] != static_cast<double>(i)) {
            std::fprintf(stderr, "peer: element %zu is %g, expected %zu\n", i, a.data()[i], i);
            return 2;
        }
        a.data()[i] = 2.0 * static_cast<double>(i);
    }
    return 0;
}

int expect(const std::string& kind, const std::string& name)
{
    try {
        (void)ndshm::shared_ndarray<double>::attach(name);
    } catch (const ndshm::not_found&) {
        return kind == "not_found" ? 0 : 3;
    } catch (const ndshm::permission_denied&) {
        return kind == "permission_denied" ? 0 : 3;
    } catch (const ndshm::format_error&) {
        return kind == "format_error" ? 0 : 3;
    } catch (const ndshm::error&) {
        return 3;
    }
    return 4;
}

} // namespace

int main(int argc, char** argv)
{
    try {
        const std::string cmd = argc > 1 ? argv[1] : "";
        if (cmd == "double-it" && argc == 3) {
            return double_it(argv[2]);
        }
        if (cmd == "expect" && argc == 4) {
            return expect(argv[2], argv[3]);
        }
        std::fprintf(stderr, "usage: ndshm_peer double-it NAME | expect KIND NAME\n");
        return 64;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "peer: %s\n", e.what());
        return 1;
    }
}
