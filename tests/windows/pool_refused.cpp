// Must not compile: ndshm/pool.hpp forks its workers, and Windows has no fork(). The windows step of
// scripts/quickstart.sh builds this and expects the #error that says so and what to use instead.
#include <ndshm/pool.hpp>

int main() { return 0; }
