#!/usr/bin/env bash
# The two entry points of the README:
#   bash tools/dev.sh serve [troupe serve flags...]  set up, build, serve the default model on 127.0.0.1
#   bash tools/dev.sh test                           set up, build, run every test, the ASan+UBSan
#                                                    unit/actor/net suites and the fuzz smoke (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
cmd="${1:-}"
shift || true
cache="${TROUPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe}"
export CCACHE_DIR="${CCACHE_DIR:-$cache/ccache}"
build="${TROUPE_BUILD_DIR:-build}"
jobs="${TROUPE_JOBS:-$(nproc)}"

configure() {
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DTROUPE_PYTHON="$cache/venv/bin/python" "$@" >/dev/null
}

case "$cmd" in
  serve)
    bash tools/setup.sh
    configure -DTROUPE_TESTS=OFF -DTROUPE_BENCH=OFF -DTROUPE_EXAMPLES=OFF
    cmake --build "$build" -j "$jobs" --target troupe
    exec "$build/tools/troupe" serve --host 127.0.0.1 "$@"
    ;;
  test)
    bash tools/setup.sh --test
    configure
    cmake --build "$build" -j "$jobs"
    (cd "$build" && ctest --output-on-failure -j "$jobs" --timeout 1200 "$@")
    # ASan+UBSan over the unit, actor and net suites and the fuzz replays (build-asan/): fails on any
    # sanitizer report. TROUPE_ASAN=0 skips it.
    if [[ "${TROUPE_ASAN:-1}" != 0 ]]; then
      bash tools/sanitize.sh asan
    fi
    # Fuzz smoke: every libFuzzer target (clang, ASan+UBSan, build-fuzz/) replays its regressions and
    # fuzzes from its seeds for 20000 executions or 20 s. TROUPE_FUZZ_SMOKE=0 skips it.
    if [[ "${TROUPE_FUZZ_SMOKE:-1}" != 0 ]]; then
      bash tools/fuzz.sh --runs 20000 --time 20
    fi
    ;;
  *)
    echo "usage: bash tools/dev.sh serve [flags] | bash tools/dev.sh test [ctest flags]" >&2
    exit 2
    ;;
esac
