#!/usr/bin/env bash
# Builds troupe's CPU side with a sanitizer and runs the unit, actor and net suites and the fuzz
# corpus replays; with --e2e also the end-to-end suite against the sanitized `troupe` binary:
#   bash tools/sanitize.sh asan [--e2e] [ctest args]   build-asan/, -DTROUPE_SANITIZE=address,undefined
#   bash tools/sanitize.sh tsan [--e2e] [ctest args]   build-tsan/, -DTROUPE_SANITIZE=thread
# (tools/dev.sh test, and so CI, runs `asan` without --e2e.)
# CUDA is off. Extra arguments go to ctest (e.g. -R block_pool). Every process (test executables,
# the servers the Python tests start, CLI runs) writes its sanitizer reports under
# <build>/sanitizer-reports/ (UBSan's, which gcc prints to stderr, are collected there from the
# ctest log and from the e2e servers' logs); the script prints build and test times, the ctest
# summary and the head of every report, and exits non-zero when a test fails or any report was
# written.
# Left out of --e2e: install_package (packaging, no runtime code: it would link the instrumented
# static libraries into an uninstrumented outside project) and py_test_playground (headless
# Chromium dominates the CPU; the /v1/ws paths it drives are covered by py_test_websocket).
# TSan: CAF comes from Debian uninstrumented, so TSan cannot see its synchronisation; the tsan run
# puts the instrumented CAF of tools/build_caf_tsan.sh (same version) first on LD_LIBRARY_PATH.
# tools/tsan.supp, if present, suppresses races proven to lie inside uninstrumented libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-}"
shift || true
e2e=0
if [[ "${1:-}" == --e2e ]]; then e2e=1; shift; fi
case "$kind" in
  # ASan at -O1 with line tables only (-g1): the compile time of -O2 -g halves (ws_session.cpp:
  # 207 s -> 96 s) and reports keep file:line stacks. CI builds this one cold.
  asan) build="${TROUPE_SANITIZE_BUILD_DIR:-build-asan}"; sanitize="address,undefined"; opt="-O1 -g1" ;;
  tsan) build="${TROUPE_SANITIZE_BUILD_DIR:-build-tsan}"; sanitize="thread"; opt="-O2 -g" ;;
  *) echo "usage: bash tools/sanitize.sh asan|tsan [--e2e] [ctest args]" >&2; exit 2 ;;
esac
cache="${TROUPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe}"
export CCACHE_DIR="${CCACHE_DIR:-$cache/ccache}"
jobs="${TROUPE_JOBS:-$(nproc)}"
labels='unit|actors|net|fuzz'
exclude='^$'
targets=(troupe_config_tests troupe_runtime_tests troupe_actors_tests troupe_net_tests
  openai_routes_replay ws_message_replay responses_request_replay tokenizer_replay gguf_replay safetensors_replay
  config_json_replay hf_config_replay chat_template_replay tokenize_replay http_header_checks_replay
  command_line_replay prompt_list_replay reasoning_parser_replay tool_output_replay json_schema_replay grammar_replay)
if ((e2e)); then
  labels="$labels|e2e"
  exclude='^(install_package|py_test_playground)$'
  targets+=(troupe troupe_e2e_tests example_server)
  bash tools/setup.sh --test  # the Python clients of the e2e tests
fi

TIMEFORMAT="%R s wall, %U s user, %S s sys"
mkdir -p "$build"
echo "sanitize: building $kind ($sanitize) in $build, -j$jobs"
{ time {
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$opt -DNDEBUG" -DTROUPE_SANITIZE="$sanitize" \
    -DTROUPE_CUDA=OFF -DTROUPE_BENCH=OFF -DTROUPE_EXAMPLES=ON -DTROUPE_PYTHON="$cache/venv/bin/python" >/dev/null
  cmake --build "$build" -j "$jobs" --target "${targets[@]}"
} >"$build/sanitize-build.log" 2>&1 ; } 2>"$build/sanitize-build.time" || {
  tail -n 40 "$build/sanitize-build.log" >&2; echo "sanitize: build failed (log: $build/sanitize-build.log)" >&2; exit 2; }
echo "sanitize: build took $(cat "$build/sanitize-build.time")"

# Any report fails the test whose process wrote it, and the run.
reports="$PWD/$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}:log_path=$reports/asan"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}:suppressions=$PWD/tools/ubsan.supp:log_path=$reports/ubsan"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1}:log_path=$reports/tsan"
export TROUPE_SANITIZER_REPORTS="$reports"  # tests/e2e/conftest.py copies server logs with reports here
export TROUPE_SANITIZER="$kind"  # tests whose size is set for an uninstrumented binary scale down (test_soak.py)
[[ -f tools/tsan.supp ]] && TSAN_OPTIONS="$TSAN_OPTIONS:suppressions=$PWD/tools/tsan.supp"
if [[ "$kind" == tsan ]]; then
  # CAF instrumented with TSan (tools/build_caf_tsan.sh): without it TSan cannot see CAF's
  # synchronisation and reports each actor/message hand-off between CAF's threads as a race.
  caf_tsan="${TROUPE_CAF_TSAN_DIR:-$cache/caf-tsan/lib}"
  if [[ -f "$caf_tsan/libcaf_core.so.0.17.6" ]]; then
    export LD_LIBRARY_PATH="$caf_tsan${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "sanitize: running against the instrumented CAF in $caf_tsan"
  else
    echo "sanitize: warning: no instrumented CAF in $caf_tsan (tools/build_caf_tsan.sh): expect false" \
      "races inside CAF's hand-offs" >&2
  fi
fi
rc=0
{ time ctest --test-dir "$build" -L "$labels" -E "$exclude" -j "$jobs" --timeout 1200 --output-on-failure "$@" \
    >"$build/sanitize-ctest.log" 2>&1 || rc=$?; } 2>"$build/sanitize-ctest.time"
echo "sanitize: tests took $(cat "$build/sanitize-ctest.time")"
grep -E '^[0-9]+% tests passed|tests failed out of|\*\*\*Failed|\*\*\*Exception|Timeout|Not Run' "$build/sanitize-ctest.log" || true
# gcc's combined ASan+UBSan runtime writes UBSan's reports to stderr whatever log_path says: keep
# those that reached the ctest log (halt_on_error also fails their test).
grep -E -B2 -A12 'runtime error:|ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer' \
  "$build/sanitize-ctest.log" >"$reports/from-ctest-log.txt" || rm -f "$reports/from-ctest-log.txt"
shopt -s nullglob
files=("$reports"/*)
for f in "${files[@]}"; do
  echo "---- sanitizer report $f:"
  grep -m 1 -E 'ERROR: |WARNING: |runtime error:' "$f" || head -n 3 "$f"
done
if ((${#files[@]})); then
  echo "sanitize: ${#files[@]} sanitizer report file(s) in $reports"
  rc=1
fi
((rc == 0)) && echo "sanitize: $kind passed" || echo "sanitize: $kind FAILED (log: $build/sanitize-ctest.log)"
exit "$rc"
