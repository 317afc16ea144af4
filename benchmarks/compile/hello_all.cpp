// Compile time of every area at once (ndshm/all.hpp): the same hello-world as hello_ndshm.cpp.
#include <ndshm/all.hpp>

int main()
{
    auto a = ndshm::shared_ndarray<double>::create({1000, 3});
    a(0, 1) = 2.5;
    a.view() += 1.0;
    return a(0, 1) == 3.5 ? 0 : 1;
}
