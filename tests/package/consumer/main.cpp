// Uses ndshm the way the README shows: create an array, attach it again by name, read what was written.
#include <ndshm/ndshm.hpp>

#include <cstdio>
#include <exception>
#include <string>

int main()
{
    try {
        std::string name;
        {
            auto a = ndshm::shared_ndarray<double>::create({4});
            name = a.name();
            a(2) = 42.5;
            a.view()(3) = -1.0;

            auto b = ndshm::shared_ndarray<double>::attach(a.name());
            if (b.shape() != ndshm::shape_type{4} || b(2) != 42.5 || b.view()(3) != -1.0 || b(0) != 0.0) {
                std::fprintf(stderr, "consumer: attached array of '%s' does not hold what was written\n", name.c_str());
                return 1;
            }
            b(1) = 7.0; // same mapping, seen through the other handle
            if (a(1) != 7.0) {
                std::fprintf(stderr, "consumer: a write through the attached handle is not visible\n");
                return 1;
            }
        }
        // The creating handle owned the name: it is gone now.
        try {
            (void)ndshm::shared_ndarray<double>::attach(name);
            std::fprintf(stderr, "consumer: '%s' still exists after its owner went away\n", name.c_str());
            return 1;
        } catch (const ndshm::not_found&) {
        }
        std::printf("consumer: ok (%s, C++ %ld)\n", name.c_str(), static_cast<long>(__cplusplus));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        return 1;
    }
}
