// A quick tour of ndshm: create arrays in shared memory, use them through xtensor, attach them by name.
//
// Producer and consumer run in one process here so that the tour is a single program; in real use the
// consumer part runs in any other process of the same user, given the name (see producer_consumer.cpp).
// Failures are exceptions derived from ndshm::error; the tour lets them end the program.
#include <cstdio>
#include <string>

// [readme]
#include <ndshm/ndshm.hpp>

int main()
{
    // Producer
    auto a = ndshm::shared_ndarray<double>::create({1000, 3});                // zero-filled, auto-named, owned
    a(0, 1) = 2.5;                                                            // element access
    a.view() += 1.0;                                                          // xtensor adaptor, no copy
    auto b = ndshm::shared_ndarray<float>::from_array(xt::arange<float>(10)); // copy an expression in
    std::string name = a.name();                                              // pass this to any process

    // Consumer, in any process of the same user
    auto c = ndshm::shared_ndarray<double>::attach(name); // zero copy; shape and dtype from the segment
    double s = xt::sum(c.view())();
    auto any = ndshm::attach_any(name);               // dtype-erased: any.dtype(), any.shape(), any.as<double>()
    auto d = any.as<double>();                        // a typed handle on the same mapping
    auto f = ndshm::attach_any(b.name()).as<float>(); // b's segment holds float32
    // [readme-end]

    std::printf("a = %s: %s, %zu x %zu, a(0, 1) = %g, sum %g\n", name.c_str(), ndshm::dtype_name(any.dtype()),
                any.shape()[0], any.shape()[1], d(0, 1), s);
    const bool ok = s == 3002.5 && c(0, 1) == 3.5 && c(999, 2) == 1.0 && any.dtype() == ndshm::dtype::float64 &&
                    any.shape() == ndshm::shape_type{1000, 3} && d(0, 1) == 3.5 && f.size() == 10 && f(9) == 9.0f &&
                    xt::sum(f.view())() == 45.0f;
    std::printf("b = %s holds 0 .. %g; everything as expected: %s\n", b.name().c_str(), static_cast<double>(f(9)),
                ok ? "yes" : "NO");

    // A fixed-rank handle, as xt::xtensor<T, N> beside xt::xarray<T>.
    // [readme]
    auto img = ndshm::shared_tensor<float, 2>::create({480, 640});
    auto same = ndshm::shared_tensor<float, 2>::attach(img.name()); // rank 2 or ndshm::error
    ndshm::shared_ndarray<float> any_rank = img;                    // the same mapping
    // [readme-end]
    same.at(479, 639) = 1.0f; // checked access: std::out_of_range outside the shape
    const bool tensor_ok = any_rank(479, 639) == 1.0f && any_rank.dimension() == 2;
    std::printf("img = %s: 480 x 640 float32, seen through both handles: %s\n", img.name().c_str(),
                tensor_ok ? "yes" : "NO");
    return ok && tensor_ok ? 0 : 1;
}
