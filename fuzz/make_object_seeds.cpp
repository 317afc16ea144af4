// Writes the seed corpus of fuzz_object: composite objects shared with ndshm::share, copied out of
// their segments.   make_object_seeds fuzz/corpus/object
#include "object_frame.hpp"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <stdlib.h>

int main(int argc, char** argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_object_seeds OUTPUT_DIR\n");
        return 2;
    }
    char tmpl[] = "/tmp/ndshm_seeds_XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
        return 1;
    }
    ndshm::options o;
    o.directory = tmpl;
    std::vector<fuzz_frame> frames(4);
    frames[1].label = "one";
    frames[1].ids = {1, 2, 3};
    frames[1].pixels = ndshm::shared_ndarray<float>::from_array(xt::xarray<float>{{1, 2}, {3, 4}}, o);
    frames[2].label = "fields";
    frames[2].fields["a"] = xt::xarray<double>{1.5, 2.5};
    frames[2].fields["b"] = xt::xarray<double>{{1, 2, 3}, {4, 5, 6}};
    frames[2].extra = std::complex<double>(1, -1);
    frames[3].label = std::string(200, 'x');
    frames[3].ids.assign(50, 7);
    frames[3].pixels = ndshm::shared_ndarray<float>::create({3, 4}, ndshm::order::fortran, o);
    frames[3].fields["empty"] = xt::xarray<double>::from_shape({0, 3});
    int n = 0;
    for (const auto& f : frames) {
        const ndshm::shared_object h = ndshm::share(f, o);
        std::ifstream in(std::string(tmpl) + "/" + h.name(), std::ios::binary);
        const std::vector<char> bytes(std::istreambuf_iterator<char>(in), {});
        std::ofstream out(std::string(argv[1]) + "/seed_" + std::to_string(n++), std::ios::binary);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    for (auto& f : frames) {
        f.pixels.reset();
    }
    std::system((std::string("rm -rf ") + tmpl).c_str());
    return 0;
}
