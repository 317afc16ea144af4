// Composite objects in files: save an object to one file (the layout of its segment, so loading maps
// it), compress its arrays with zstd, and load a file into shared memory for other processes.
// This example links zstd; the rest of ndshm links nothing.
#include <ndshm/ndshm.hpp>
#include <ndshm/zstd.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <string>

namespace {

struct frame {
    std::string label;
    std::map<std::string, xt::xarray<double>> fields;
    ndshm::shared_ndarray<float> pixels;
    template <class A>
    void serialize(A& ar)
    {
        ar(label, fields, pixels);
    }
};

int run(const std::string& dir)
{
    frame f;
    f.label = "frame 7";
    f.fields["temperature"] = xt::arange<double>(10000.0).reshape({100, 100}) / 4.0;
    f.pixels = ndshm::shared_ndarray<float>::create({480, 640});
    // [readme]
    ndshm::save_object(dir + "/frame.npy", f);               // one file, atomic
    frame g = ndshm::read_object<frame>(dir + "/frame.npy"); // maps the file: g.pixels is a view of it

    ndshm::file_options packed;
    packed.compression = ndshm::zstd(); // #include <ndshm/zstd.hpp>, link libzstd
    ndshm::save_object(dir + "/frame.zst.npy", f, packed);
    ndshm::shared_object h = ndshm::share_file(dir + "/frame.zst.npy", {}, packed); // into shared memory
    frame k = ndshm::load<frame>(h.name());                                         // in any process
    // [readme-end]
    const auto plain = std::filesystem::file_size(dir + "/frame.npy");
    const auto small = std::filesystem::file_size(dir + "/frame.zst.npy");
    std::printf("frame.npy: %ju bytes; frame.zst.npy: %ju bytes; shared again as %s\n",
                static_cast<std::uintmax_t>(plain), static_cast<std::uintmax_t>(small), h.name().c_str());
    const bool ok = g.label == f.label && g.fields == f.fields && g.pixels.view() == f.pixels.view() &&
                    k.fields == f.fields && k.pixels.shape() == f.pixels.shape() && small < plain;
    std::printf("everything as expected: %s\n", ok ? "yes" : "NO");
    return ok ? 0 : 1;
}

} // namespace

int main()
{
    char tmpl[] = "/tmp/ndshm_example_objects_XXXXXX";
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
