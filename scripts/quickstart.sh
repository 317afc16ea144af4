#!/usr/bin/env bash
# ndshm quickstart for a fresh Debian 12 machine. Installs what is missing, then:
#
#   bash scripts/quickstart.sh demo        build and run examples/producer_consumer.cpp (Release, build/)
#   bash scripts/quickstart.sh test        build everything and run the test suite (build/)
#   bash scripts/quickstart.sh sanitize    the test suite under AddressSanitizer + UBSan (Debug, build-asan/)
#   bash scripts/quickstart.sh format      check that the sources are clang-formatted
#   bash scripts/quickstart.sh format fix  reformat them in place
#
# Works from any directory. Run as root, or as a user with sudo for the package installation.
set -euo pipefail

usage() {
    sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

# Prints a command, then runs it.
run() {
    echo "+ $*" >&2
    "$@"
}

packages=(cmake g++ make libxtensor-dev libboost-dev libcereal-dev catch2 python3-numpy libbenchmark-dev clang-format)

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
    install_packages
    configure build Release
    # examples/producer_consumer.cpp, built as target ndshm_example_producer_consumer (examples/CMakeLists.txt).
    demo=ndshm_example_producer_consumer
    echo "== building $demo" >&2
    run cmake --build build --target "$demo" -j"$(nproc)"
    echo "== running it" >&2
    run "build/examples/$demo"
    ;;
test)
    install_packages
    configure build Release
    echo "== building" >&2
    run cmake --build build -j"$(nproc)"
    echo "== testing" >&2
    run ctest --test-dir build --output-on-failure --no-tests=error -j2
    ;;
sanitize)
    install_packages
    flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
    configure build-asan Debug -DCMAKE_CXX_COMPILER=g++ "-DCMAKE_CXX_FLAGS=$flags" \
        "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined"
    echo "== building with $flags" >&2
    run cmake --build build-asan -j"$(nproc)"
    echo "== testing under the sanitizers" >&2
    export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
    echo "+ ASAN_OPTIONS=$ASAN_OPTIONS UBSAN_OPTIONS=$UBSAN_OPTIONS" >&2
    run ctest --test-dir build-asan --output-on-failure --no-tests=error -j2
    ;;
format)
    case "${2:-check}" in
    check) action=(--dry-run --Werror) ;;
    fix) action=(-i) ;;
    *) usage ;;
    esac
    install_packages clang-format
    dirs=()
    for d in include tests examples benchmarks tools; do
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
