#!/usr/bin/env bash
# tools/dev.sh: the test command configures the whole suite whatever configured the build before
# (`dev.sh serve` turns tests, benchmarks and examples off in the same build folder). Runs the
# configure step of serve, then of test, on a scratch build folder; no setup, no build.
#   bash tests/tools/dev_sh_test.sh SCRATCH_BUILD_DIR
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
scratch="${1:?usage: dev_sh_test.sh SCRATCH_BUILD_DIR}"
rm -rf "$scratch"
export TROUPE_BUILD_DIR="$scratch"

expect_parts() {
  local want="$1" v got
  for v in TROUPE_TESTS TROUPE_BENCH TROUPE_EXAMPLES; do
    got="$(sed -n "s/^$v:BOOL=//p" "$scratch/CMakeCache.txt")"
    if [[ "$got" != "$want" ]]; then
      echo "FAIL: after dev.sh configure $2, $v is '$got', expected $want" >&2
      exit 1
    fi
  done
}

bash "$repo/tools/dev.sh" configure serve
expect_parts OFF serve
bash "$repo/tools/dev.sh" configure test
expect_parts ON test
# The tests are registered again (the GoogleTest ones are discovered only once built; the Python
# e2e tests and install_package are listed at once).
num="$(cd "$scratch" && ctest -N | sed -n 's/^Total Tests: //p')"
if [[ -z "$num" || "$num" -eq 0 ]]; then
  echo "FAIL: after dev.sh configure test, ctest lists no tests" >&2
  exit 1
fi
rm -rf "$scratch"
echo "PASS: dev.sh test turns the suite back on after serve ($num tests listed before building)"
