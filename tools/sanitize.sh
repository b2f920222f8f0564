#!/usr/bin/env bash
# Builds the CPU-side tests with a sanitizer and runs the unit, actor and net suites (and the fuzz
# corpus replays):
#   bash tools/sanitize.sh asan   build-asan/, -DTROUPE_SANITIZE=address,undefined
#   bash tools/sanitize.sh tsan   build-tsan/, -DTROUPE_SANITIZE=thread
# CUDA is off. Extra arguments go to ctest (e.g. -R block_pool). Prints build time and a summary;
# exits non-zero when a test fails or a sanitizer reports. Note: CAF, Boost and spdlog come from
# Debian uninstrumented, so TSan cannot see their synchronisation and may report races inside them.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-}"
shift || true
case "$kind" in
  asan) build="${TROUPE_SANITIZE_BUILD_DIR:-build-asan}"; sanitize="address,undefined" ;;
  tsan) build="${TROUPE_SANITIZE_BUILD_DIR:-build-tsan}"; sanitize="thread" ;;
  *) echo "usage: bash tools/sanitize.sh asan|tsan [ctest args]" >&2; exit 2 ;;
esac
cache="${TROUPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe}"
export CCACHE_DIR="${CCACHE_DIR:-$cache/ccache}"
jobs="${TROUPE_JOBS:-$(nproc)}"
labels='unit|actors|net|fuzz'
targets=(troupe_config_tests troupe_runtime_tests troupe_actors_tests troupe_net_tests
  openai_routes_replay ws_message_replay tokenizer_replay gguf_replay safetensors_replay
  config_json_replay hf_config_replay chat_template_replay)

TIMEFORMAT="%R s wall, %U s user, %S s sys"
mkdir -p "$build"
echo "sanitize: building $kind ($sanitize) in $build, -j$jobs"
{ time {
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROUPE_SANITIZE="$sanitize" \
    -DTROUPE_CUDA=OFF -DTROUPE_BENCH=OFF -DTROUPE_EXAMPLES=OFF >/dev/null
  cmake --build "$build" -j "$jobs" --target "${targets[@]}"
} >"$build/sanitize-build.log" 2>&1 ; } 2>"$build/sanitize-build.time" || {
  tail -n 40 "$build/sanitize-build.log" >&2; echo "sanitize: build failed (log: $build/sanitize-build.log)" >&2; exit 2; }
echo "sanitize: build took $(cat "$build/sanitize-build.time")"

# Any report fails the test that triggered it.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1}"
rc=0
{ time ctest --test-dir "$build" -L "$labels" -j "$jobs" --timeout 1200 --output-on-failure "$@" \
    >"$build/sanitize-ctest.log" 2>&1 || rc=$?; } 2>"$build/sanitize-ctest.time"
echo "sanitize: tests took $(cat "$build/sanitize-ctest.time")"
grep -E '^[0-9]+% tests passed|tests failed out of|\*\*\*Failed|\*\*\*Exception|Timeout|Not Run' "$build/sanitize-ctest.log" || true
for pattern in 'ERROR: AddressSanitizer' 'ERROR: LeakSanitizer' 'runtime error:' 'WARNING: ThreadSanitizer'; do
  n=$(grep -c "$pattern" "$build/sanitize-ctest.log" || true)
  ((n == 0)) || echo "sanitize: $n x '$pattern' (see $build/sanitize-ctest.log)"
done
((rc == 0)) && echo "sanitize: $kind passed" || echo "sanitize: $kind FAILED (log: $build/sanitize-ctest.log)"
exit "$rc"
