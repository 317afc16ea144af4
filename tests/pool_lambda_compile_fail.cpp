// Must NOT compile: a fork_pool task given as a lambda that captures. The task runs in another process,
// where the captured variables do not exist; the static_assert says so and what to do instead.
// tests/CMakeLists.txt compiles this file and expects that message.
#include <ndshm/pool.hpp>

int main()
{
    ndshm::fork_pool pool(0);
    const int offset = 3;
    return pool.run([offset](int x) { return x + offset; }, 1);
}
