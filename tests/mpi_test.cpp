// Tests of ndshm/mpi.hpp. Run by ctest through mpiexec on 4 ranks with NDSHM_MPI_EMULATED_NODES=2:
// nodes {0, 1} and {2, 3} on one machine, each with its own segment. Every rank runs every test case;
// ranks synchronise through MPI only. Each test case removes what it made.
#include <ndshm/inspect.hpp>
#include <ndshm/mpi.hpp>

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>

namespace {

/// What the MPI_Bcast interposer below saw on the communicator it watches: the byte count of every
/// MPI_BYTE broadcast.
struct bcast_record {
    MPI_Comm watched = MPI_COMM_NULL;
    std::vector<int> counts;
};
bcast_record& bcasts()
{
    static bcast_record r;
    return r;
}

} // namespace

// MPI's profiling interface: this definition takes the place of the library's MPI_Bcast in this
// program (every MPI_ function is also reachable as PMPI_), so the test sees the messages ndshm sends.
extern "C" int MPI_Bcast(void* buffer, int count, MPI_Datatype type, int root, MPI_Comm comm)
{
    if (comm != MPI_COMM_NULL && comm == bcasts().watched && type == MPI_BYTE) {
        bcasts().counts.push_back(count);
    }
    return PMPI_Bcast(buffer, count, type, root, comm);
}

namespace {

namespace mpi = ndshm::mpi;

int world_rank()
{
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int world_size()
{
    int n = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

void world_barrier() { MPI_Barrier(MPI_COMM_WORLD); }

/// Every rank's `v` (a trivially copyable value), by rank of `c`.
template <class T>
std::vector<T> allgather(MPI_Comm c, const T& v)
{
    int n = 0;
    MPI_Comm_size(c, &n);
    std::vector<T> all(static_cast<std::size_t>(n));
    MPI_Allgather(&v, static_cast<int>(sizeof(T)), MPI_BYTE, all.data(), static_cast<int>(sizeof(T)), MPI_BYTE, c);
    return all;
}

/// Every rank's string (up to 255 characters), by rank of `c`.
std::vector<std::string> allgather(MPI_Comm c, const std::string& s)
{
    struct text {
        char bytes[256];
    } t{};
    s.copy(t.bytes, sizeof t.bytes - 1);
    std::vector<std::string> out;
    for (const auto& x : allgather(c, t)) {
        out.emplace_back(x.bytes);
    }
    return out;
}

/// Rank `root`'s string on every rank.
std::string bcast(const std::string& s, int root)
{
    return allgather(MPI_COMM_WORLD, s)[static_cast<std::size_t>(root)];
}

bool segment_exists(const std::string& name)
{
    struct stat st {};
    return !name.empty() && ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

/// The 4-rank, 2-node layout every test case here assumes (ctest sets it up).
mpi::topology make_topology(const mpi::topology_options& opt = {})
{
    mpi::topology t(MPI_COMM_WORLD, opt);
    REQUIRE(t.size() == 4);
    REQUIRE(t.node_count() == 2);
    return t;
}

/// What a call threw: nothing, an ndshm::error (code and message), or another exception.
struct outcome {
    bool threw = false;
    bool ndshm_error = false;
    std::string what;
    std::error_code code;
};

template <class F>
outcome run(F&& f)
{
    outcome o;
    try {
        f();
    } catch (const ndshm::error& e) {
        o.threw = true;
        o.ndshm_error = true;
        o.what = e.what();
        o.code = e.code();
    } catch (const std::exception& e) {
        o.threw = true;
        o.what = e.what();
    }
    return o;
}

pid_t pid_of_rank(int r) { return allgather(MPI_COMM_WORLD, ::getpid())[static_cast<std::size_t>(r)]; }

} // namespace

// ---------------------------------------------------------------------------------------------------
// topology

TEST_CASE("topology: 4 ranks and 2 emulated nodes give nodes {0, 1} and {2, 3}, each led by its lowest rank",
          "[topology]")
{
    REQUIRE(world_size() == 4);
    const mpi::topology t = make_topology();
    const int r = world_rank();
    CHECK(t.rank() == r);
    CHECK(t.emulated_nodes() == 2);
    CHECK(t.node() == r / 2);
    CHECK(t.node_rank() == r % 2);
    CHECK(t.node_size() == 2);
    CHECK(t.is_leader() == (r % 2 == 0));
    CHECK(t.leader_of(0) == 0);
    CHECK(t.leader_of(1) == 2);
    for (int q = 0; q < 4; ++q) {
        CHECK(t.node_of(q) == q / 2);
    }
    int result = MPI_UNEQUAL;
    MPI_Comm_compare(t.comm(), MPI_COMM_WORLD, &result);
    CHECK(result == MPI_CONGRUENT); // a duplicate: ndshm's messages never meet the program's

    // The node communicator holds exactly the node's ranks, in rank order.
    const auto members = allgather(t.node_comm(), r);
    CHECK(members == std::vector<int>{2 * (r / 2), 2 * (r / 2) + 1});
    if (t.is_leader()) {
        REQUIRE(t.leaders_comm() != MPI_COMM_NULL);
        CHECK(allgather(t.leaders_comm(), r) == std::vector<int>{0, 2});
    } else {
        CHECK(t.leaders_comm() == MPI_COMM_NULL);
    }
    CHECK_THROWS_AS(t.node_of(4), ndshm::error);
    CHECK_THROWS_AS(t.leader_of(2), ndshm::error);
}

TEST_CASE("topology: the constructor's emulated_nodes overrides the environment", "[topology]")
{
    {
        const mpi::topology t(MPI_COMM_WORLD, {4});
        CHECK(t.node_count() == 4);
        CHECK(t.node() == world_rank());
        CHECK(t.node_size() == 1);
        CHECK(t.is_leader());
    }
    {
        // 1: the real machines. The tests run on one machine, so there is one node of 4 ranks.
        const mpi::topology t(MPI_COMM_WORLD, {1});
        CHECK(t.node_count() == 1);
        CHECK(t.node_size() == 4);
        CHECK(t.is_leader() == (world_rank() == 0));
    }
    {
        // More emulated nodes than ranks: one rank per node.
        const mpi::topology t(MPI_COMM_WORLD, {7});
        CHECK(t.node_count() == 4);
        CHECK(t.node_size() == 1);
    }
}

TEST_CASE("topology: over a sub-communicator, ranks and nodes are those of the sub-communicator", "[topology]")
{
    const int r = world_rank();
    MPI_Comm half = MPI_COMM_NULL;
    MPI_Comm_split(MPI_COMM_WORLD, r % 2, r, &half);
    {
        const mpi::topology t(half); // 2 ranks, split into 2 emulated nodes by the environment
        CHECK(t.size() == 2);
        CHECK(t.rank() == r / 2);
        CHECK(t.node_count() == 2);
        CHECK(t.node_size() == 1);
        CHECK(t.node() == r / 2);
    }
    MPI_Comm_free(&half);
}

TEST_CASE("topology: invalid or disagreeing knobs are errors on every rank", "[topology]")
{
    const int r = world_rank();
    auto o = run([] { mpi::topology t(MPI_COMM_WORLD, {-1}); });
    CHECK(o.ndshm_error);
    CHECK(o.code == ndshm::errc::invalid_argument);
    CHECK_THAT(o.what, Catch::Contains("emulated_nodes is -1"));

    mpi::topology_options zero;
    zero.max_message_bytes = 0;
    o = run([&] { mpi::topology t(MPI_COMM_WORLD, zero); });
    CHECK(o.ndshm_error);
    CHECK_THAT(o.what, Catch::Contains("max_message_bytes is 0"));

    // A bad value on one rank only: every rank throws, none waits in a collective.
    mpi::topology_options one_bad;
    one_bad.max_message_bytes = r == 3 ? 0 : 4096;
    o = run([&] { mpi::topology t(MPI_COMM_WORLD, one_bad); });
    CHECK(o.ndshm_error);
    CHECK_THAT(o.what, Catch::Contains("max_message_bytes is 0"));
    if (r != 3) {
        CHECK_THAT(o.what, Catch::Contains("rank 3 failed"));
    }

    // Valid but different on different ranks.
    o = run([&] { mpi::topology t(MPI_COMM_WORLD, {1 + r % 2}); });
    CHECK(o.ndshm_error);
    CHECK(o.code == ndshm::errc::invalid_argument);
    CHECK_THAT(o.what, Catch::Contains("the ranks disagree") && Catch::Contains("(rank(s) 1, 3 differ from rank 0)"));

    // The environment variable.
    const std::string saved = std::getenv("NDSHM_MPI_EMULATED_NODES") ? std::getenv("NDSHM_MPI_EMULATED_NODES") : "";
    ::setenv("NDSHM_MPI_EMULATED_NODES", "two", 1);
    o = run([] { mpi::topology t; });
    CHECK(o.ndshm_error);
    CHECK_THAT(o.what, Catch::Contains("NDSHM_MPI_EMULATED_NODES='two' is not a positive integer"));
    ::setenv("NDSHM_MPI_EMULATED_NODES", r == 1 ? "3" : "2", 1);
    o = run([] { mpi::topology t; });
    CHECK_THAT(o.what, Catch::Contains("the ranks disagree"));
    ::setenv("NDSHM_MPI_EMULATED_NODES", saved.c_str(), 1);

    o = run([] { mpi::topology t(MPI_COMM_NULL); });
    CHECK(o.ndshm_error);
    CHECK_THAT(o.what, Catch::Contains("MPI_COMM_NULL"));
    // Still usable afterwards.
    CHECK(make_topology().node_count() == 2);
}

// ---------------------------------------------------------------------------------------------------
// node_array

TEST_CASE("node_array: each node's leader creates the segment, the node's other ranks attach it", "[node_array]")
{
    const auto t = make_topology();
    const int r = t.rank();
    auto a = mpi::node_array<double>::create(t, {4, 3});
    static_assert(std::is_same_v<std::decay_t<decltype(a.array())>, ndshm::shared_ndarray<double>>);
    CHECK(a.shape() == ndshm::shape_type{4, 3});
    CHECK(a.array().size() == 12);
    CHECK(xt::sum(a.view())() == 0.0); // zero-filled

    // One segment per node, the same for the node's ranks.
    const auto names = allgather(t.comm(), a.name());
    CHECK(names[0] == names[1]);
    CHECK(names[2] == names[3]);
    CHECK(names[0] != names[2]);
    // Created by the node's leader; mapped by the node's ranks and by no one else.
    const auto pids = allgather(t.comm(), ::getpid());
    if (t.is_leader()) {
        // CHECK, not REQUIRE: a rank that left the test case here would leave the others at the barrier.
        const ndshm::segment_info s = ndshm::inspect(a.name());
        CHECK(s.trailer);
        CHECK((s.trailer && s.trailer->creator_pid == static_cast<std::uint64_t>(::getpid())));
        auto users = s.users;
        std::sort(users.begin(), users.end());
        std::vector<std::int64_t> node_pids{pids[static_cast<std::size_t>(r)], pids[static_cast<std::size_t>(r + 1)]};
        std::sort(node_pids.begin(), node_pids.end());
        // Where some process's /proc entries cannot be read (a container's init, say), the walk says so,
        // and what it saw still holds this user's processes: the node's ranks are among them.
        CHECK(std::includes(users.begin(), users.end(), node_pids.begin(), node_pids.end()));
        if (s.users_known) {
            CHECK(users == node_pids);
        }
    }

    // A rank's write is seen by the other rank of its node, not by the other node.
    a(static_cast<std::size_t>(t.node_rank()), 0) = 100.0 + r;
    MPI_Barrier(t.node_comm());
    const int partner = r ^ 1;
    CHECK(a(static_cast<std::size_t>(partner % 2), 0) == 100.0 + partner);
    CHECK(a(static_cast<std::size_t>(t.node_rank()), 0) == 100.0 + r);
    CHECK(a(2, 0) == 0.0);

    const std::string name = a.name();
    a.release();
    CHECK(a.empty());
    CHECK(a.array().empty());
    CHECK_FALSE(segment_exists(name)); // release returns after the leader has unlinked
}

TEST_CASE("node_tensor: a fixed-rank handle on the node's copy, C or Fortran order", "[node_array]")
{
    const auto t = make_topology();
    auto a = mpi::node_tensor<float, 2>::create(t, {3, 5}, ndshm::order::fortran);
    static_assert(std::is_same_v<std::decay_t<decltype(a.array())>, ndshm::shared_tensor<float, 2>>);
    static_assert(std::is_same_v<std::decay_t<decltype(a.shape())>, std::array<std::size_t, 2>>);
    CHECK(a.shape() == std::array<std::size_t, 2>{3, 5});
    CHECK(a.array().fortran_order()); // the non-leaders read it from the segment's header
    CHECK(a.array().strides() == std::array<std::size_t, 2>{1, 3});
    if (t.node_rank() == 1) {
        a.view()(2, 4) = 7.5f;
    }
    MPI_Barrier(t.node_comm());
    CHECK(a(2, 4) == 7.5f);
    CHECK(a.data()[14] == 7.5f);                  // column-major: (2, 4) is element 2 + 4 * 3
    ndshm::shared_ndarray<float> any = a.array(); // converts like the core handle
    CHECK(any.name() == a.name());
    a.release();
}

TEST_CASE("node_array: options::name names node k's segment <name>_<k>", "[node_array]")
{
    const auto t = make_topology();
    ndshm::options o;
    o.name = "ndshm_mpitest_" + std::to_string(pid_of_rank(0));
    auto a = mpi::node_array<std::int32_t>::create(t, {2}, o);
    CHECK(a.name() == o.name + "_" + std::to_string(t.node()));
    CHECK(segment_exists(a.name()));
    a.release();
    CHECK_FALSE(segment_exists(o.name + "_" + std::to_string(t.node())));
}

TEST_CASE("node_array: release unlinks once every rank of the node has let go; copies keep the data", "[node_array]")
{
    const auto t = make_topology();
    auto a = mpi::node_array<std::int64_t>::create(t, {8});
    if (t.is_leader()) {
        a.view() = xt::arange<std::int64_t>(8) * (t.node() + 1);
    }
    MPI_Barrier(t.node_comm());
    const ndshm::shared_ndarray<std::int64_t> copy = a.array(); // a copy of the handle outlives release
    const std::string name = a.name();
    if (t.is_leader()) {
        // Tell the other rank that this one is entering release, then enter it.
        const int token = 1;
        MPI_Send(&token, 1, MPI_INT, 1, 7, t.node_comm());
        a.release();
    } else {
        int token = 0;
        MPI_Recv(&token, 1, MPI_INT, 0, 7, t.node_comm(), MPI_STATUS_IGNORE);
        // The leader is in release (or about to be); it may not unlink before this rank enters it.
        CHECK(segment_exists(name));
        CHECK(ndshm::shared_ndarray<std::int64_t>::attach(name)(7) == 7 * (t.node() + 1));
        a.release();
    }
    CHECK_FALSE(segment_exists(name));
    CHECK(copy(7) == 7 * (t.node() + 1)); // the mapping stays valid
    a.release();                          // a second release does nothing
    CHECK(a.empty());
}

TEST_CASE("node_array: destruction without release is local; the leader's handle unlinks the name", "[node_array]")
{
    const auto t = make_topology();
    ndshm::shared_ndarray<double> kept;
    std::string name;
    {
        auto a = mpi::node_array<double>::create(t, {16});
        name = a.name();
        if (t.is_leader()) {
            a.view() = 2.5;
        }
        MPI_Barrier(t.node_comm());
        if (!t.is_leader()) {
            kept = a.array();
        }
    }
    world_barrier(); // every node array is destroyed
    CHECK_FALSE(segment_exists(name));
    if (!t.is_leader()) {
        CHECK(xt::sum(kept.view())() == 16 * 2.5);
    }
}

TEST_CASE("node_array: moved-from and default node arrays are empty", "[node_array]")
{
    const auto t = make_topology();
    mpi::node_array<double> none;
    CHECK(none.empty());
    CHECK(none.array().empty());
    none.release(); // nothing to do
    const auto o = run([&] { none.bcast(0); });
    CHECK(o.ndshm_error);
    CHECK_THAT(o.what, Catch::Contains("the node array is empty"));
    CHECK_THROWS_AS(none.topo(), ndshm::error);

    auto a = mpi::node_array<double>::create(t, {2});
    CHECK(a.topo().node() == t.node());
    auto b = std::move(a);
    CHECK(a.empty());
    CHECK(a.name().empty());
    CHECK_FALSE(b.empty());
    b.release();
}

// ---------------------------------------------------------------------------------------------------
// bcast, from_root, scatter, gather

TEST_CASE("node_array bcast: every node gets the root's node copy, in messages of at most max_message_bytes",
          "[transfer]")
{
    mpi::topology_options small;
    small.max_message_bytes = 1000; // 1001 x 7 doubles: 57 messages, the last one partial
    for (const std::size_t chunk : {std::size_t(1000), std::size_t(1) << 30}) {
        small.max_message_bytes = chunk;
        const auto t = make_topology(small);
        CHECK(t.max_message_bytes() == chunk);
        auto a = mpi::node_array<double>::create(t, {1001, 7});
        for (int root = 0; root < 4; ++root) {
            // Stale data on every node (once both ranks are done checking the last round), then the
            // root's own values on the root's node.
            MPI_Barrier(t.node_comm());
            if (t.is_leader()) {
                a.view() = -1.0;
            }
            MPI_Barrier(t.node_comm());
            if (t.rank() == root) {
                a.view() = xt::reshape_view(xt::arange<double>(7007.0), {1001, 7}) + 10000.0 * root;
            }
            bcasts().watched = t.leaders_comm();
            bcasts().counts.clear();
            a.bcast(root);
            bcasts().watched = MPI_COMM_NULL;
            const xt::xarray<double> want = xt::reshape_view(xt::arange<double>(7007.0), {1001, 7}) + 10000.0 * root;
            CHECK((a.view() == want));
            // Only the leaders move data, in ceil(56056 / chunk) messages of at most chunk bytes.
            const auto& counts = bcasts().counts;
            if (t.is_leader()) {
                const std::size_t bytes = 1001 * 7 * sizeof(double);
                CHECK(counts.size() == (bytes + chunk - 1) / chunk);
                CHECK(std::accumulate(counts.begin(), counts.end(), std::size_t(0)) == bytes);
                CHECK(std::all_of(counts.begin(), counts.end(),
                                  [&](int c) { return c > 0 && static_cast<std::size_t>(c) <= chunk; }));
            } else {
                CHECK(counts.empty());
            }
        }
        a.release();
    }
}

TEST_CASE("node_array bcast of an empty array does nothing and fails nothing", "[transfer]")
{
    const auto t = make_topology();
    auto a = mpi::node_array<std::uint8_t>::create(t, {0, 3});
    a.bcast(3);
    CHECK(a.size() == 0);
    a.release();
}

TEST_CASE("node_array from_root: the root's expression or elements, on every node", "[transfer]")
{
    mpi::topology_options small;
    small.max_message_bytes = 64;
    const auto t = make_topology(small);
    const int r = t.rank();
    const xt::xarray<double> want = xt::reshape_view(xt::arange<double>(30.0), {6, 5});
    {
        // Root 3 passes an expression; the others pass an empty array, which is never read.
        const xt::xarray<double> src = r == 3 ? want : xt::xarray<double>();
        auto a = mpi::node_array<double>::from_root(t, src * 2.0, 3);
        CHECK(a.shape() == ndshm::shape_type{6, 5});
        CHECK((a.view() == want * 2.0));
        const auto names = allgather(t.comm(), a.name());
        CHECK(names[0] != names[2]);
        a.release();
    }
    {
        // A Fortran-order source: the node arrays are C order with the same values.
        xt::xarray<double, xt::layout_type::column_major> f = want;
        auto a = mpi::node_array<double>::from_root(t, f, 1);
        CHECK_FALSE(a.array().fortran_order());
        CHECK((a.view() == want));
        a.release();
    }
    {
        // Elements at a pointer, read on root 2 only.
        std::vector<std::int32_t> data(12);
        for (std::size_t i = 0; i < data.size(); ++i) {
            data[i] = r == 2 ? static_cast<std::int32_t>(i * i) : -1;
        }
        auto a = mpi::node_tensor<std::int32_t, 2>::from_root(t, r == 2 ? data.data() : nullptr, {3, 4}, 2);
        CHECK(a.shape() == std::array<std::size_t, 2>{3, 4});
        CHECK(a(2, 3) == 121);
        CHECK(a(1, 1) == 25);
        a.release();
    }
}

TEST_CASE("node_array scatter and gather: node k holds rows [k*R/K, (k+1)*R/K), gather stacks them back", "[transfer]")
{
    mpi::topology_options small;
    small.max_message_bytes = 40; // rows of 3 doubles span messages
    const auto t = make_topology(small);
    const int r = t.rank();
    xt::xarray<double> whole = xt::reshape_view(xt::arange<double>(33.0), {11, 3});

    // Root 1 is not a leader: it copies node 0's block itself and sends node 1's to rank 2.
    auto a = mpi::node_array<double>::scatter(t, r == 1 ? whole : xt::xarray<double>(), 1);
    const std::size_t first = t.node() == 0 ? 0 : 5;
    const std::size_t rows = t.node() == 0 ? 5 : 6;
    CHECK(a.row_offset() == first);
    CHECK(a.shape() == ndshm::shape_type{rows, 3});
    CHECK((a.view() == xt::view(whole, xt::range(first, first + rows))));

    // Each node changes its block (once both ranks have checked it), then root 3 (not a leader) gathers.
    MPI_Barrier(t.node_comm());
    if (t.node_rank() == 1) {
        a.view() += 1000.0;
    }
    MPI_Barrier(t.node_comm());
    const ndshm::shared_ndarray<double> g = a.gather(3);
    if (r == 3) {
        CHECK(g.shape() == ndshm::shape_type{11, 3});
        CHECK((g.view() == whole + 1000.0));
    } else {
        CHECK(g.empty());
    }
    const ndshm::shared_ndarray<double> g0 = a.gather(0);
    CHECK(g0.empty() == (r != 0));
    if (r == 0) {
        CHECK((g0.view() == whole + 1000.0));
    }
    a.release();

    // A Fortran-order source scatters the same rows; a root that is a leader of another node.
    xt::xarray<double, xt::layout_type::column_major> f = whole;
    auto b = mpi::node_array<double>::scatter(t, f, 2);
    CHECK((b.view() == xt::view(whole, xt::range(first, first + rows))));
    b.release();
}

TEST_CASE("node_array scatter of fewer rows than nodes, and node_tensor blocks", "[transfer]")
{
    const auto t = make_topology();
    const xt::xarray<float> one = {{1.f, 2.f}};
    auto a = mpi::node_tensor<float, 2>::scatter(t, one, 0);
    CHECK(a.shape() == std::array<std::size_t, 2>{t.node() == 0 ? 0u : 1u, 2});
    CHECK(a.row_offset() == 0);
    const ndshm::shared_tensor<float, 2> g = a.gather(0);
    if (t.rank() == 0) {
        CHECK(g.shape() == std::array<std::size_t, 2>{1, 2});
        CHECK(g(0, 1) == 2.f);
    }
    a.release();
}

// ---------------------------------------------------------------------------------------------------
// composite objects

namespace {

struct model {
    std::string label;
    std::vector<int> sizes;
    xt::xarray<float> bias;                // copied out on load
    ndshm::shared_ndarray<double> weights; // a zero-copy view of the node's copy on load

    template <class A>
    void serialize(A& ar)
    {
        ar(label, sizes, bias, weights);
    }
};

model make_model(const std::string& label, double scale)
{
    model m;
    m.label = label;
    m.sizes = {3, 4};
    m.bias = xt::xarray<float>{0.5f, 1.5f};
    m.weights = ndshm::shared_ndarray<double>::from_array(xt::reshape_view(xt::arange<double>(12.0), {3, 4}) * scale);
    return m;
}

} // namespace

TEST_CASE("node_object share: each node's leader makes and shares the object once, every rank loads it zero-copy",
          "[object]")
{
    const auto t = make_topology();
    int calls = 0;
    auto obj = mpi::node_object::share(t, [&] {
        ++calls;
        return make_model("node " + std::to_string(t.node()), 1.0);
    });
    CHECK(calls == (t.is_leader() ? 1 : 0));
    CHECK(obj.array_count() == 2);
    const auto names = allgather(t.comm(), obj.name());
    CHECK(names[0] == names[1]);
    CHECK(names[2] == names[3]);
    CHECK(names[0] != names[2]);

    model m = obj.load<model>();
    CHECK(m.label == "node " + std::to_string(t.node()));
    CHECK(m.sizes == std::vector<int>{3, 4});
    CHECK(m.bias(1) == 1.5f);
    CHECK(m.weights.name() == obj.name()); // a view into the node's segment, not a copy
    CHECK(m.weights(2, 3) == 11.0);

    // Writes through one rank's view reach the other rank of the node only.
    MPI_Barrier(t.comm());
    if (t.node_rank() == 1) {
        m.weights(0, 0) = 100.0 + t.node();
    }
    MPI_Barrier(t.comm());
    CHECK(m.weights(0, 0) == 100.0 + t.node());

    const std::string name = obj.name();
    obj.release();
    CHECK(obj.empty());
    CHECK_FALSE(segment_exists(name));
    CHECK(m.weights(2, 3) == 11.0); // loaded objects keep their mapping
}

TEST_CASE("node_object from_root: the root's object is copied to every node", "[object]")
{
    mpi::topology_options small;
    small.max_message_bytes = 4096 + 17;
    const auto t = make_topology(small);
    const int r = t.rank();
    const model src = r == 1 ? make_model("from rank 1", 3.0) : model{};
    auto obj = mpi::node_object::from_root(t, src, 1);
    const model m = obj.load<model>();
    CHECK(m.label == "from rank 1");
    CHECK(m.bias(0) == 0.5f);
    CHECK(m.weights(2, 3) == 33.0);
    CHECK(m.weights.name() == obj.name());
    const auto names = allgather(t.comm(), obj.name());
    CHECK(names[0] == names[1]);
    CHECK(names[2] == names[3]);
    CHECK(names[0] != names[2]);
    // The root owns its node's copy; node 1's leader owns the copy it received.
    if (r == 1 || r == 2) {
        const ndshm::segment_info s = ndshm::inspect(obj.name());
        REQUIRE(s.trailer);
        CHECK(s.kind == ndshm::segment_kind::object);
        CHECK(s.trailer->creator_pid == static_cast<std::uint64_t>(::getpid()));
    }
    const std::string name = obj.name();
    obj.release();
    CHECK_FALSE(segment_exists(name));
}

TEST_CASE("node_object share: a failure on one leader is reported on every rank", "[object]")
{
    const auto t = make_topology();
    ndshm::options o;
    o.name = "ndshm_mpitest_obj_" + std::to_string(pid_of_rank(0));
    const auto out = run([&] {
        auto obj = mpi::node_object::share(
            t,
            [&] {
                if (t.node() == 1) {
                    throw std::runtime_error("no model file on this node");
                }
                return make_model("x", 1.0);
            },
            o);
    });
    CHECK(out.threw);
    CHECK_THAT(out.what, Catch::Contains("no model file on this node"));
    if (t.rank() == 2) {
        CHECK_FALSE(out.ndshm_error); // the failed rank throws its own exception
    } else {
        CHECK(out.ndshm_error);
        CHECK(out.code == ndshm::errc::mpi_failure);
        CHECK_THAT(out.what, Catch::StartsWith("ndshm: node_object share") && Catch::Contains("rank 2 failed"));
    }
    world_barrier();
    CHECK_FALSE(segment_exists(o.name + "_0")); // node 0's segment went with the exception
}

// ---------------------------------------------------------------------------------------------------
// store

TEST_CASE("node_store: a node's leader gets the array from its store, the node's other ranks attach it", "[store]")
{
    const auto t = make_topology();
    const int r = t.rank();
    std::string dir;
    if (r == 0) {
        char tmpl[] = "/tmp/ndshm_mpi_store_XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        ndshm::store s(dir);
        s.put("x", xt::xarray<double>(xt::reshape_view(xt::arange<double>(40.0), {10, 4})));
    }
    dir = bcast(dir, 0);
    {
        mpi::node_store st(t, dir);
        const ndshm::shared_ndarray<const double> x = st.get<double>("x");
        CHECK(x.shape() == ndshm::shape_type{10, 4});
        CHECK(x(9, 3) == 39.0);
        const auto names = allgather(t.comm(), x.name());
        CHECK(names[0] == names[1]);
        CHECK(names[2] == names[3]);
        // Both emulated nodes are on this machine, where the store loads a file once: one leader
        // loaded it, the other attached it.
        const auto stats = allgather(t.comm(), st.stats());
        CHECK(stats[0].loaded + stats[2].loaded == 1);
        CHECK(stats[0].attached + stats[2].attached == 1);
        CHECK(stats[1].loaded + stats[1].attached + stats[3].loaded + stats[3].attached == 0);

        const auto rows = st.get<double>("x", ndshm::row_range{2, 5});
        CHECK(rows.shape() == ndshm::shape_type{3, 4});
        CHECK(rows(0, 0) == 8.0);

        auto o = run([&] { (void)st.get<double>("missing"); });
        CHECK(o.ndshm_error);
        CHECK(o.code == std::errc::no_such_file_or_directory);
        bool mismatch = false;
        try {
            (void)st.get<float>("x");
        } catch (const ndshm::dtype_mismatch& e) { // the leaders' class, on every rank
            mismatch = true;
            CHECK_THAT(e.what(), Catch::Contains("float32"));
            CHECK(e.code() == std::errc::invalid_argument);
        }
        CHECK(mismatch);
        o = run([&] { (void)st.get<double>(r == 3 ? "y" : "x"); });
        CHECK_THAT(o.what, Catch::Contains("the ranks disagree") && Catch::Contains("rank 3 passed key 'y'"));

        const std::string name = x.name();
        st.close();
        world_barrier(); // both nodes have closed (the segment is the loading leader's)
        CHECK_FALSE(segment_exists(name));
        CHECK(x(9, 3) == 39.0); // handles stay valid
    }
    world_barrier();
    if (r == 0) {
        std::filesystem::remove_all(dir);
    }
}

// ---------------------------------------------------------------------------------------------------
// errors

TEST_CASE("MPI errors become ndshm::error with MPI's own description", "[errors]")
{
    const auto t = make_topology();
    char byte = 0;
    // ndshm's communicators return errors instead of aborting: a negative count is refused.
    const int rc = MPI_Bcast(&byte, -1, MPI_BYTE, 0, t.comm());
    REQUIRE(rc != MPI_SUCCESS);
    char text[MPI_MAX_ERROR_STRING] = {};
    int len = 0;
    MPI_Error_string(rc, text, &len);
    const auto o = run([&] { mpi::detail::check(rc, "MPI_Bcast", "node_array bcast", "seg"); });
    CHECK(o.ndshm_error);
    CHECK(o.code == ndshm::errc::mpi_failure);
    CHECK(o.code.message() == "MPI operation failed");
    CHECK_THAT(o.what, Catch::StartsWith("ndshm: node_array bcast 'seg': MPI_Bcast failed: " +
                                         std::string(text, static_cast<std::size_t>(len))));
}

TEST_CASE("ranks that pass different arguments to a collective get the same error, naming both", "[errors]")
{
    const auto t = make_topology();
    const int r = t.rank();
    auto o = run([&] { (void)mpi::node_array<double>::create(t, {4, r % 2 == 1 ? 6u : 5u}); });
    CHECK(o.ndshm_error);
    CHECK(o.code == ndshm::errc::invalid_argument);
    CHECK_THAT(o.what, Catch::Contains("the ranks disagree about the node array's dtype, order and shape: rank 0 "
                                       "passed float64 C-order (4, 5), rank 1 passed float64 C-order (4, 6) "
                                       "(rank(s) 1, 3 differ from rank 0)"));

    o = run([&] {
        if (r == 2) {
            (void)mpi::node_array<float>::create(t, {4});
        } else {
            (void)mpi::node_array<double>::create(t, {4});
        }
    });
    CHECK_THAT(o.what, Catch::Contains("rank 2 passed float32 C-order (4,) (rank(s) 2 differ"));

    auto a = mpi::node_array<double>::create(t, {4});
    o = run([&] { a.bcast(r == 0 ? 1 : 0); });
    CHECK_THAT(o.what, Catch::Contains("the ranks disagree about the root"));
    o = run([&] { a.bcast(4); });
    CHECK(o.code == ndshm::errc::invalid_argument);
    CHECK_THAT(o.what, Catch::Contains("root 4 is not a rank of the communicator (size 4)"));
    o = run([&] { (void)mpi::node_array<double>::scatter(t, xt::xarray<double>(5.0), 0); });
    CHECK_THAT(o.what, Catch::Contains("no dimensions"));
    const xt::xarray<double> rows = xt::zeros<double>({4, 2});
    o = run([&] {
        if (r == 1) {
            (void)mpi::node_tensor<double, 2>::scatter(t, rows, 0);
        } else {
            (void)mpi::node_array<double>::scatter(t, rows, 0);
        }
    });
    CHECK_THAT(o.what, Catch::Contains("rank 0 passed root 0, dtype float64, any rank, rank 1 passed root 0, "
                                       "dtype float64, rank 2"));
    o = run([&] { (void)t.node_of(-1); });
    CHECK_THAT(o.what, Catch::Contains("rank -1 is not a rank of the communicator"));
    a.release();
}

TEST_CASE("a failure on one node is reported on every rank with the failed rank's class and code", "[errors]")
{
    const auto t = make_topology();
    ndshm::options o;
    o.name = "ndshm_mpitest_taken_" + std::to_string(pid_of_rank(0));
    // Node 1's name is taken: its leader's create fails with already_exists.
    ndshm::shared_ndarray<double> squatter;
    if (t.rank() == 2) {
        ndshm::options taken = o;
        taken.name += "_1";
        squatter = ndshm::shared_ndarray<double>::create({1}, taken);
    }
    world_barrier();
    bool already = false;
    std::string what;
    try {
        (void)mpi::node_array<double>::create(t, {8}, o);
    } catch (const ndshm::already_exists& e) {
        already = true;
        what = e.what();
        CHECK(e.code() == std::errc::file_exists);
    }
    CHECK(already);
    if (t.rank() != 2) {
        CHECK_THAT(what, Catch::Contains("rank 2 failed: create '" + o.name + "_1'"));
    }
    world_barrier();
    CHECK_FALSE(segment_exists(o.name + "_0")); // node 0's array went with the exception
}
