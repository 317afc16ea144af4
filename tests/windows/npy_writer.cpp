// Writes one persisted array in the segment directory DIR under NAME (DIR NAME on the command line), so
// that NumPy on Linux can check the bytes the Windows build wrote: a 3x4 float64 array with
// a[i][j] = i * 10 + j + 0.5, and a 5-element int32 array NAME_i with a[i] = -i.
#include <ndshm/ndshm.hpp>

#include <cstdio>
#include <exception>

int main(int argc, char** argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: ndshm_windows_npy_writer DIR NAME\n");
        return 2;
    }
    try {
        ndshm::options opt;
        opt.directory = argv[1];
        opt.name = argv[2];
        auto a = ndshm::shared_ndarray<double>::create({3, 4}, opt);
        for (std::size_t i = 0; i < 3; ++i) {
            for (std::size_t j = 0; j < 4; ++j) {
                a(i, j) = static_cast<double>(i * 10 + j) + 0.5;
            }
        }
        a.persist();
        opt.name = std::string(argv[2]) + "_i";
        auto b = ndshm::shared_ndarray<std::int32_t>::create({5}, opt);
        for (std::size_t i = 0; i < 5; ++i) {
            b(i) = -static_cast<std::int32_t>(i);
        }
        b.persist();
        std::printf("wrote %s and %s_i in %s\n", argv[2], argv[2], argv[1]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ndshm_windows_npy_writer: %s\n", e.what());
        return 1;
    }
    return 0;
}
