// The type that fuzz_object loads and make_object_seeds shares: a composite object with a string, a
// vector, a map of copied arrays, a zero-copy shared array and an optional value.
#ifndef NDSHM_FUZZ_OBJECT_FRAME_HPP
#define NDSHM_FUZZ_OBJECT_FRAME_HPP

#include <ndshm/object.hpp>

#include <xtensor/xarray.hpp>

#include <complex>
#include <map>
#include <optional>
#include <string>
#include <vector>

struct fuzz_frame {
    std::string label;
    std::vector<int> ids;
    std::map<std::string, xt::xarray<double>> fields;
    ndshm::shared_ndarray<float> pixels;
    std::optional<std::complex<double>> extra;

    template <class A>
    void serialize(A& ar)
    {
        ar(label, ids, fields, pixels, extra);
    }
};

#endif
