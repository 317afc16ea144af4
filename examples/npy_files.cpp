// .npy files: save an array, load it (or some of its rows) into shared memory, or map it from disk
// without copying. NumPy reads these files and ndshm reads NumPy's.
#include <ndshm/ndshm.hpp>
#include <ndshm/file.hpp>

#include <xtensor/xview.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

namespace {

int run(const std::string& dir)
{
    const xt::xarray<double> samples = xt::arange<double>(4000.0).reshape({1000, 4});
    // [readme]
    const std::string path = dir + "/samples.npy";
    ndshm::save_npy(path, samples);                                        // atomic write; np.load reads it
    ndshm::npy_header h = ndshm::read_npy_header(path);                    // dtype, shape, order
    auto all = ndshm::read_npy<double>(path);                              // into a new shared array
    auto some = ndshm::read_npy<double>(path, ndshm::row_range{100, 200}); // reads only rows 100 to 199
    auto tail = ndshm::map_npy<double>(path, ndshm::row_range{900});       // maps rows 900 to 999, no copy
    std::printf("%s: %s %zu x %zu; loaded %s and %s, mapped %zu rows\n", path.c_str(), ndshm::dtype_name(h.dtype),
                h.shape[0], h.shape[1], all.name().c_str(), some.name().c_str(), tail.shape()[0]);
    // [readme-end]
    const bool ok = all.view() == samples && some.view() == xt::view(samples, xt::range(100, 200), xt::all()) &&
                    tail.view() == xt::view(samples, xt::range(900, 1000), xt::all());
    std::printf("everything as expected: %s\n", ok ? "yes" : "NO");
    return ok ? 0 : 1;
}

} // namespace

int main()
{
    char tmpl[] = "/tmp/ndshm_example_npy_XXXXXX";
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
