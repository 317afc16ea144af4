// Compile-time baseline: a hello-world with xtensor's own container (scripts/bench_report.py times it).
#include <xtensor/xarray.hpp>

int main()
{
    xt::xarray<double> a = xt::zeros<double>({1000, 3});
    a(0, 1) = 2.5;
    a += 1.0;
    return a(0, 1) == 3.5 ? 0 : 1;
}
