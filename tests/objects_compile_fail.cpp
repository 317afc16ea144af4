// Must NOT compile: ndshm::share of a type cereal cannot serialise stops with ndshm's static_assert,
// which says how to fix it. tests/CMakeLists.txt compiles this file and expects that message.
#include <ndshm/object.hpp>

struct no_serialize {
    int x = 0;
};

int main()
{
    const auto h = ndshm::share(no_serialize{});
    return h.empty() ? 0 : 1;
}
