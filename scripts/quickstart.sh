#!/usr/bin/env bash
# ndshm quickstart for a fresh Debian 12 machine. Installs what is missing, then:
#
#   bash scripts/quickstart.sh demo        build and run examples/producer_consumer.cpp (Release, build-demo/;
#                                          installs only the compiler, CMake and the library's dependencies)
#   bash scripts/quickstart.sh test [CXX] [STD] [separate]
#                                          build everything and run the test suite: g++ and C++17 in build/ by
#                                          default, or another compiler and standard (test clang++ 20) in
#                                          build-CXX-STD/; with `separate`, ndshm's non-template functions are
#                                          compiled once into a static library (NDSHM_SEPARATE_COMPILATION=ON,
#                                          build-CXX-STD-separate/)
#   bash scripts/quickstart.sh sanitize    the test suite under AddressSanitizer + UBSan (g++, C++20, Debug,
#                                          build-asan/)
#   bash scripts/quickstart.sh tsan        the multi-process, crash, stress, queue, pool and lock tests under
#                                          ThreadSanitizer (clang, C++17, Debug, build-tsan/)
#   bash scripts/quickstart.sh fuzz [SEC]  build the libFuzzer targets in fuzz/ with clang and run each for SEC
#                                          seconds (default 60) on its seed corpus (build-fuzz/)
#   bash scripts/quickstart.sh mpi [separate]
#                                          with Open MPI installed, build ndshm/mpi.hpp's tests, example and benchmark
#                                          (NDSHM_WITH_MPI=ON, build-mpi/) and run them: ctest -L mpi; with
#                                          separate, against ndshm compiled once (build-mpi-separate/)
#   bash scripts/quickstart.sh bench       run every benchmark once: docs/benchmarks.md and .png, then the handoff
#                                          report docs/handoff.md (build-bench/)
#   bash scripts/quickstart.sh windows     cross-build the portable tests for Windows with mingw-w64, run them
#                                          under wine (fresh WINEPREFIX), and check with NumPy that a segment
#                                          the Windows build wrote loads (build-windows/)
#   bash scripts/quickstart.sh format      check that the sources are clang-formatted
#   bash scripts/quickstart.sh format fix  reformat them in place
#
# Works from any directory. Run as root, or as a user with sudo for the package installation.
set -euo pipefail

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
    exit 2
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

# Prints a command, then runs it.
run() {
    echo "+ $*" >&2
    "$@"
}

# What the library itself needs (the demo installs only these).
demo_packages=(cmake g++ make libxtensor-dev libcereal-dev)
packages=(cmake g++ make libxtensor-dev libcereal-dev catch2 python3-numpy libbenchmark-dev clang-format clang libclang-rt-14-dev libzstd-dev pybind11-dev python3-dev python3-pytest libcli11-dev nlohmann-json3-dev)

# install_packages [package...]: installs those of the given packages (default: all of the above) that are missing.
install_packages() {
    local missing=() p
    if [ $# -eq 0 ]; then
        set -- "${packages[@]}"
    fi
    for p in "$@"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != "installed" ]; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "== the needed Debian packages are installed: $*" >&2
        return
    fi
    echo "== installing ${missing[*]}" >&2
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "error: not root and no sudo: install as root: apt-get install ${missing[*]}" >&2
            exit 1
        fi
        sudo=(sudo)
    fi
    run "${sudo[@]}" apt-get update
    run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# configure <build dir> <build type> [extra cmake arguments...]
configure() {
    local dir=$1 type=$2
    shift 2
    echo "== configuring $dir ($type)" >&2
    run cmake -S "$root" -B "$root/$dir" -DPython3_EXECUTABLE=/usr/bin/python3 -DCMAKE_BUILD_TYPE="$type" "$@"
}

mode=${1:-}
case "$mode" in
demo)
    # Only what the demo needs: a compiler, CMake and the library's own dependencies (no test framework,
    # benchmark library, clang or Python), in a build directory of its own with nothing else configured.
    install_packages "${demo_packages[@]}"
    configure build-demo Release -DNDSHM_BUILD_TESTS=OFF -DNDSHM_BUILD_TOOLS=OFF -DNDSHM_BUILD_PYTHON=OFF \
        -DNDSHM_INSTALL=OFF
    # examples/producer_consumer.cpp, built as target ndshm_example_producer_consumer (examples/CMakeLists.txt).
    demo=ndshm_example_producer_consumer
    echo "== building $demo" >&2
    run cmake --build build-demo --target "$demo" -j"$(nproc)"
    echo "== running it" >&2
    run "build-demo/examples/$demo"
    ;;
test)
    install_packages
    cxx=${2:-g++}
    std=${3:-17}
    separate=OFF
    dir=build
    if [ "$cxx" != g++ ] || [ "$std" != 17 ]; then
        dir=build-$cxx-$std
    fi
    case "${4:-}" in
    "") ;;
    separate)
        separate=ON
        dir=build-$cxx-$std-separate
        ;;
    *)
        echo "error: test takes [CXX] [STD] [separate], not '$4'" >&2
        exit 2
        ;;
    esac
    configure "$dir" Release -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_STANDARD="$std" \
        -DNDSHM_SEPARATE_COMPILATION="$separate"
    echo "== building with $cxx, C++$std (separate compilation: $separate)" >&2
    run cmake --build "$dir" -j"$(nproc)"
    echo "== testing" >&2
    run ctest --test-dir "$dir" --output-on-failure --no-tests=error -j2
    ;;
sanitize)
    install_packages
    flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
    configure build-asan Debug -DCMAKE_CXX_COMPILER=g++ -DCMAKE_CXX_STANDARD=20 "-DCMAKE_CXX_FLAGS=$flags" \
        "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" "-DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=address,undefined"
    echo "== building with $flags" >&2
    run cmake --build build-asan -j"$(nproc)"
    echo "== testing under the sanitizers" >&2
    export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
    echo "+ ASAN_OPTIONS=$ASAN_OPTIONS UBSAN_OPTIONS=$UBSAN_OPTIONS" >&2
    run ctest --test-dir build-asan --output-on-failure --no-tests=error -j2
    ;;
tsan)
    install_packages
    # clang builds this code about 1.5x faster than g++; -g1 (line tables) is all the reports need.
    flags="-fsanitize=thread -fno-omit-frame-pointer"
    configure build-tsan Debug -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_STANDARD=17 "-DCMAKE_CXX_FLAGS=$flags" \
        -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
        "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread" -DNDSHM_BUILD_EXAMPLES=OFF -DNDSHM_BUILD_PYTHON=OFF \
        -DNDSHM_CHECK_HEADERS=OFF # the other builds compile the headers in every order, in both standards
    echo "== building with $flags" >&2
    run cmake --build build-tsan -j"$(nproc)"
    # Every Catch2 program that ctest knows, run on its tests with these tags.
    spec='[multiprocess],[crash],[stress],[queue],[pool],[lock]'
    mapfile -t programs < <(ctest --test-dir build-tsan --show-only=json-v1 | /usr/bin/python3 -c '
import json, sys
tests = json.load(sys.stdin)["tests"]
print("\n".join(sorted({t["command"][0] for t in tests
                        if len(t.get("command", [])) >= 2 and "/build-tsan/tests/" in t["command"][0]})))')
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
    echo "+ TSAN_OPTIONS=$TSAN_OPTIONS" >&2
    run cmake -DMODE=before -DSTATE=build-tsan/shm_before.txt -P tests/check_shm.cmake
    ran=0
    for program in "${programs[@]}"; do
        if [ -n "$("$program" --list-test-names-only "$spec" || true)" ]; then
            echo "== testing $(basename "$program") $spec under ThreadSanitizer" >&2
            run "$program" "$spec"
            ran=$((ran + 1))
        fi
    done
    if [ "$ran" -eq 0 ]; then
        echo "error: no test program has tests tagged $spec" >&2
        exit 1
    fi
    run cmake -DMODE=after -DSTATE=build-tsan/shm_before.txt -P tests/check_shm.cmake
    ;;
fuzz)
    install_packages
    seconds=${2:-60}
    # A project of its own (fuzz/CMakeLists.txt): libFuzzer needs clang.
    run cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo
    echo "== building the fuzz targets with -fsanitize=fuzzer,address,undefined" >&2
    run cmake --build build-fuzz -j"$(nproc)"
    export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
    mkdir -p build-fuzz/artifacts
    # libFuzzer runs on one core: run as many targets at once as there are cores.
    targets=(build-fuzz/fuzz_*)
    jobs=$(nproc)
    for ((first = 0; first < ${#targets[@]}; first += jobs)); do
        batch=("${targets[@]:first:jobs}")
        pids=()
        for target in "${batch[@]}"; do
            name=${target#build-fuzz/fuzz_}
            if [ ! -d "fuzz/corpus/$name" ]; then
                echo "error: $target has no seed corpus fuzz/corpus/$name" >&2
                exit 1
            fi
            # New inputs go to build-fuzz/corpus/NAME; the committed seeds are only read.
            mkdir -p "build-fuzz/corpus/$name"
            echo "+ $target -max_total_time=$seconds ... (log: build-fuzz/$name.log)" >&2
            "$target" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
                -artifact_prefix="build-fuzz/artifacts/$name-" "build-fuzz/corpus/$name" "fuzz/corpus/$name" \
                >"build-fuzz/$name.log" 2>&1 &
            pids+=($!)
        done
        for i in "${!batch[@]}"; do
            name=${batch[$i]#build-fuzz/fuzz_}
            if ! wait "${pids[$i]}"; then
                kill "${pids[@]}" 2>/dev/null || true
                tail -n 60 "build-fuzz/$name.log" >&2
                echo "error: fuzz_$name failed (log above): the input is in build-fuzz/artifacts/" >&2
                exit 1
            fi
            echo "== fuzz_$name: $(grep -E '^Done [0-9]+ runs' "build-fuzz/$name.log"), no crash, leak or report" >&2
        done
    done
    ;;
mpi)
    install_packages
    # python3-mpi4py: the test in which mpi4py ranks read the node copies with NumPy.
    install_packages libopenmpi-dev openmpi-bin python3-mpi4py
    dir=build-mpi
    separate=OFF
    case "${2:-}" in
    "") ;;
    separate)
        dir=build-mpi-separate
        separate=ON
        ;;
    *)
        echo "error: mpi takes [separate], not '$2'" >&2
        exit 2
        ;;
    esac
    configure "$dir" Release -DNDSHM_WITH_MPI=ON -DNDSHM_SEPARATE_COMPILATION="$separate"
    # Under a seccomp filter (Docker's default profile), process_vm_readv is refused, and Open MPI's
    # shared-memory transport fails on large messages unless it copies through its own buffers.
    if grep -Eq '^Seccomp:[[:space:]]*2' /proc/self/status 2>/dev/null; then
        export OMPI_MCA_btl_vader_single_copy_mechanism=none
        echo "+ OMPI_MCA_btl_vader_single_copy_mechanism=none (seccomp filter: no process_vm_readv)" >&2
    fi
    echo "== building the MPI tests, example and benchmark (separate compilation: $separate)" >&2
    run cmake --build "$dir" --target ndshm_mpi_checks -j"$(nproc)"
    echo "== testing: ctest -L mpi (each test runs mpiexec on 4 ranks, 2 emulated nodes)" >&2
    run ctest --test-dir "$dir" -L mpi --output-on-failure --no-tests=error
    ;;
bench)
    install_packages
    install_packages python3-matplotlib
    configure build-bench Release -DNDSHM_BUILD_BENCHMARKS=ON -DNDSHM_BUILD_TESTS=OFF -DNDSHM_BUILD_EXAMPLES=OFF
    echo "== building the benchmarks" >&2
    run cmake --build build-bench -j"$(nproc)"
    echo "== running them: docs/benchmarks.md and docs/benchmarks.png" >&2
    run /usr/bin/python3 scripts/bench_report.py build-bench --out docs
    # The handoff benchmarks of one run (streams, system calls per item, the Python libraries, objects,
    # memory, the pool): docs/handoff.md, whose figures the README quotes.
    install_packages linux-perf
    run /usr/bin/python3 scripts/handoff_report.py build-bench --out docs/handoff.md
    # The Python module's benchmark (benchmarks/bench_python.py), when the module was built.
    if [ -d build-bench/python ] && ls build-bench/python/ndshm.*.so >/dev/null 2>&1; then
        echo "== the Python module's benchmark: docs/python_benchmarks.md" >&2
        run env PYTHONPATH=build-bench/python /usr/bin/python3 benchmarks/bench_python.py --out docs/python_benchmarks.md
    fi
    ;;
windows)
    install_packages cmake g++-mingw-w64-x86-64 wine64 libxtensor-dev libcereal-dev catch2 nlohmann-json3-dev libcli11-dev python3-numpy
    wine=/usr/lib/wine/wine64 # Debian's wine64 package does not put it on PATH
    run cmake -S tests/windows -B build-windows -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-mingw64.cmake" \
        -DCMAKE_BUILD_TYPE=Release
    echo "== cross-building the portable tests" >&2
    run cmake --build build-windows -j"$(nproc)"
    echo "== ndshm/pool.hpp refuses to compile for Windows, and says why" >&2
    if pool_out=$(cmake --build build-windows --target ndshm_pool_refused 2>&1); then
        echo "error: a program including ndshm/pool.hpp built for Windows" >&2
        exit 1
    elif ! grep -q "Windows has no fork" <<<"$pool_out"; then
        echo "error: building ndshm/pool.hpp for Windows failed without the #error that explains it:" >&2
        echo "$pool_out" >&2
        exit 1
    fi
    prefix=$(mktemp -d)
    scratch=$(mktemp -d)
    # wineserver outlives the programs for a few seconds and writes into the prefix: stop it first.
    trap 'WINEPREFIX=$prefix /usr/lib/wine/wineserver -k 2>/dev/null || true; WINEPREFIX=$prefix /usr/lib/wine/wineserver -w 2>/dev/null || true; rm -rf "$prefix" "$scratch"' EXIT
    export WINEPREFIX=$prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
    echo "+ WINEPREFIX=$WINEPREFIX" >&2
    run "$wine" wineboot -i >/dev/null 2>&1
    for program in ndshm_portable_tests ndshm_windows_tests ndshm_windows_tests_separate; do
        echo "== $program under wine" >&2
        run "$wine" "build-windows/$program.exe"
    done
    # A segment the Windows build writes in a directory backend is a .npy file that NumPy maps in place.
    echo "== NumPy reads a segment written by the Windows build" >&2
    run "$wine" build-windows/ndshm_windows_npy_writer.exe "Z:$scratch" ndshm_from_windows
    run /usr/bin/python3 - "$scratch/ndshm_from_windows" <<'PY'
import sys
import numpy as np
base = sys.argv[1]
a = np.load(base, mmap_mode="r")
assert a.shape == (3, 4) and a.dtype == np.dtype("<f8"), (a.shape, a.dtype)
assert np.array_equal(a, np.arange(3)[:, None] * 10 + np.arange(4)[None, :] + 0.5), a
b = np.load(base + "_i", mmap_mode="r")
assert b.shape == (5,) and b.dtype == np.dtype("<i4") and list(b) == [0, -1, -2, -3, -4], (b.shape, b.dtype, b)
print("numpy: %s %s %s and %s %s: right values" % (base, a.shape, a.dtype, b.shape, b.dtype))
PY
    echo "== the ndshm tool lists and inspects them, then removes them" >&2
    run "$wine" build-windows/ndshm.exe --dir "Z:$scratch" ls
    run "$wine" build-windows/ndshm.exe --dir "Z:$scratch" info ndshm_from_windows
    run "$wine" build-windows/ndshm.exe --dir "Z:$scratch" rm ndshm_from_windows ndshm_from_windows_i
    if [ -n "$(ls -A "$scratch")" ]; then
        echo "error: ndshm rm left files in $scratch: $(ls -A "$scratch")" >&2
        exit 1
    fi
    ;;
format)
    case "${2:-check}" in
    check) action=(--dry-run --Werror) ;;
    fix) action=(-i) ;;
    *) usage ;;
    esac
    install_packages clang-format
    dirs=()
    for d in include tests examples benchmarks tools fuzz python; do
        if [ -d "$d" ]; then
            dirs+=("$d")
        fi
    done
    files=()
    if [ ${#dirs[@]} -gt 0 ]; then
        mapfile -t files < <(find "${dirs[@]}" -type f \( -name '*.cpp' -o -name '*.hpp' \) | LC_ALL=C sort)
    fi
    echo "== clang-format ${action[*]} on ${#files[@]} files in ${dirs[*]:-nothing} ($(clang-format --version))" >&2
    if [ ${#files[@]} -gt 0 ]; then
        if ! clang-format "${action[@]}" "${files[@]}"; then
            echo "error: files above are not formatted; fix them with: bash scripts/quickstart.sh format fix" >&2
            exit 1
        fi
    fi
    echo "== format: ok" >&2
    ;;
*)
    usage
    ;;
esac
