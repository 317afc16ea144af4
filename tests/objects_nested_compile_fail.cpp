// Must NOT compile: ndshm::share of an object whose nested member (inside a std::vector) cereal cannot
// serialise stops with ndshm's static_assert naming the member's type, not with cereal's long error.
// tests/CMakeLists.txt compiles this file and expects that message.
#include <ndshm/object.hpp>

#include <vector>

struct no_serialize {
    int x = 0;
};

struct outer {
    std::vector<no_serialize> items;
    template <class Archive>
    void serialize(Archive& ar)
    {
        ar(items);
    }
};

int main()
{
    const auto h = ndshm::share(outer{});
    return h.empty() ? 0 : 1;
}
