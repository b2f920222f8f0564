#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (build-fuzz/, -DTROUPE_FUZZ=ON: every library
# instrumented with ASan+UBSan) and runs each one:
#   bash tools/fuzz.sh [--runs N] [--time S] [--jobs J] [target...]
# targets: openai_routes ws_message responses_request tokenize prompt_list http_header_checks tool_output tokenizer gguf
#          safetensors config_json command_line hf_config chat_template reasoning_parser json_schema grammar
# (default: all). Each runs N executions (default 1000000) or S seconds, whichever ends first, from
# its seeds (tests/fuzz/corpus/<target>) plus what earlier runs found (build-fuzz/fuzz-corpus/),
# after replaying tests/fuzz/regressions/<target>/ (pending/ holds findings not fixed yet); the JSON
# targets (openai_routes ws_message responses_request tokenize) use tests/fuzz/json.dict. Crashers land in build-fuzz/fuzz-artifacts/
# <target>/; save one under tests/fuzz/regressions/<target>/ with a failing test. Prints executions
# and crashes per target; exits 1 when any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=""
secs=""
jobs="${TROUPE_JOBS:-$(nproc)}"
targets=()
while (($#)); do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --time) secs="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) sed -n 2,11p "$0"; exit 0 ;;
    -*) echo "fuzz: unknown flag $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ -n "$runs$secs" ] || runs=1000000
all=(openai_routes ws_message responses_request tokenize prompt_list http_header_checks tool_output tokenizer gguf safetensors config_json command_line hf_config chat_template reasoning_parser json_schema grammar)
((${#targets[@]})) || targets=("${all[@]}")

command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (bash tools/setup.sh installs it)" >&2; exit 2; }
cache="${TROUPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe}"
export CCACHE_DIR="${CCACHE_DIR:-$cache/ccache}"
build="${TROUPE_FUZZ_BUILD_DIR:-build-fuzz}"

TIMEFORMAT="%R s wall, %U s user, %S s sys"
mkdir -p "$build"
echo "fuzz: building ${targets[*]} in $build (clang, -j$jobs)"
{ time {
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DTROUPE_FUZZ=ON -DTROUPE_CUDA=OFF \
    -DTROUPE_TESTS=OFF -DTROUPE_BENCH=OFF -DTROUPE_EXAMPLES=OFF >/dev/null
  cmake --build "$build" -j "$jobs" --target "${targets[@]/%/_fuzz}"
} >"$build/fuzz-build.log" 2>&1 ; } 2>"$build/fuzz-build.time" || {
  tail -n 40 "$build/fuzz-build.log" >&2; echo "fuzz: build failed (log: $build/fuzz-build.log)" >&2; exit 2; }
echo "fuzz: build took $(cat "$build/fuzz-build.time")"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
limits=()
[ -n "$runs" ] && limits+=("-runs=$runs")
[ -n "$secs" ] && limits+=("-max_total_time=$secs")
failed=0
printf '%-16s %12s %8s %8s %s\n' target executions seconds crashes status
for t in "${targets[@]}"; do
  exe="$build/tests/fuzz/${t}_fuzz"
  work="$build/fuzz-corpus/$t"
  art="$build/fuzz-artifacts/$t"
  log="$build/fuzz-logs/$t.log"
  mkdir -p "$work" "$art" "$(dirname "$log")"
  status=ok
  crashes=0
  mapfile -t reg < <(find "tests/fuzz/regressions/$t" -maxdepth 1 -type f 2>/dev/null | sort)
  if ((${#reg[@]})); then
    "$exe" "${reg[@]}" >"$log.regressions" 2>&1 || { status="regression-fails"; crashes=$((crashes + 1)); }
  fi
  before=$(ls "$art" | wc -l)
  start=$(date +%s)
  rc=0
  dict=()
  case "$t" in  # the JSON targets share a dictionary heavy in nesting (tests/fuzz/json.dict)
    openai_routes|ws_message|responses_request|tokenize|json_schema) dict=("-dict=tests/fuzz/json.dict") ;;
  esac
  "$exe" "${limits[@]}" "${dict[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$art/" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  elapsed=$(($(date +%s) - start))
  execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)
  new=$(($(ls "$art" | wc -l) - before))
  if ((rc != 0)); then
    status="crash (rc $rc, log $log)"
    crashes=$((crashes + (new > 0 ? new : 1)))
  fi
  ((crashes == 0)) || failed=1
  printf '%-16s %12s %8s %8s %s\n' "$t" "${execs:-?}" "$elapsed" "$crashes" "$status"
done
if ((failed)); then
  echo "fuzz: crashes found; reproducers in $build/fuzz-artifacts/<target>/" >&2
  exit 1
fi
