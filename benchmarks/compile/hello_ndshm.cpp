// Compile time of ndshm's core: the same hello-world as hello_xarray.cpp on a shared array.
#include <ndshm/ndshm.hpp>

int main()
{
    auto a = ndshm::shared_ndarray<double>::create({1000, 3});
    a(0, 1) = 2.5;
    a.view() += 1.0;
    return a(0, 1) == 3.5 ? 0 : 1;
}
