#!/usr/bin/env bash
# The two entry points of the README:
#   bash tools/dev.sh serve [troupe serve flags...]  set up, build, serve the default model on 127.0.0.1
#   bash tools/dev.sh test                           set up, build, run every test, the ASan+UBSan
#                                                    unit/actor/net suites and the fuzz smoke (CI)
#   bash tools/dev.sh configure serve|test           only configure the build as that command does
#                                                    (tests/tools/dev_sh_test.sh checks it)
set -euo pipefail
cd "$(dirname "$0")/.."
cmd="${1:-}"
shift || true
cache="${TROUPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe}"
export CCACHE_DIR="${CCACHE_DIR:-$cache/ccache}"
# Paths under the checkout hash relative to it, so a fresh clone in another folder (CI) hits the
# cache that earlier builds filled.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
build="${TROUPE_BUILD_DIR:-build}"
jobs="${TROUPE_JOBS:-$(nproc)}"

# serve configures only what serving needs (no GoogleTest without setup.sh --test); test turns every
# part on again, whatever an earlier serve left in the build's cache, so the whole suite is built.
configure() {
  local parts=ON
  [[ "$1" == serve ]] && parts=OFF
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTROUPE_PYTHON="$cache/venv/bin/python" \
    -DTROUPE_TESTS=$parts -DTROUPE_BENCH=$parts -DTROUPE_EXAMPLES=$parts >/dev/null
}

case "$cmd" in
  serve)
    bash tools/setup.sh
    configure serve
    cmake --build "$build" -j "$jobs" --target troupe
    exec "$build/tools/troupe" serve --host 127.0.0.1 "$@"
    ;;
  test)
    bash tools/setup.sh --test
    configure test
    cmake --build "$build" -j "$jobs"
    (
      cd "$build"
      num_tests="$(ctest -N "$@" | sed -n 's/^Total Tests: //p')"
      echo "dev.sh test: running ${num_tests:-0} tests"
      # No tests found is a failure, never a pass.
      ctest --output-on-failure --no-tests=error -j "$jobs" --timeout 1200 "$@"
    )
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
  configure)
    [[ "${1:-}" == serve || "${1:-}" == test ]] || { echo "usage: bash tools/dev.sh configure serve|test" >&2; exit 2; }
    configure "$1"
    ;;
  *)
    echo "usage: bash tools/dev.sh serve [flags] | bash tools/dev.sh test [ctest flags]" >&2
    exit 2
    ;;
esac
