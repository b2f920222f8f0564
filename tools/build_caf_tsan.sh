#!/usr/bin/env bash
# Builds CAF 0.17.6's libcaf_core and libcaf_io with ThreadSanitizer, for `tools/sanitize.sh tsan`.
# Debian's CAF is uninstrumented, so TSan cannot see the synchronisation inside CAF (its mailbox
# and work-stealing queues hand actors and messages between threads) and reports every such
# hand-off as a race. The instrumented build has the same version and build options as Debian's
# (log level QUIET, exceptions and memory management on), so the project, compiled against
# Debian's headers, runs against it unchanged: sanitize.sh puts it first on LD_LIBRARY_PATH.
# Usage: bash tools/build_caf_tsan.sh CAF_SOURCE_DIR
#   CAF_SOURCE_DIR: CAF 0.17.6's source tree, e.g. from
#   `git clone --depth 1 --branch 0.17.6 https://github.com/actor-framework/actor-framework`.
# Installs into $TROUPE_CACHE_DIR/caf-tsan (default ~/.cache/troupe/caf-tsan); env TROUPE_JOBS.
set -euo pipefail
src="${1:?usage: build_caf_tsan.sh CAF_SOURCE_DIR}"
cache="${TROUPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe}"
prefix="$cache/caf-tsan"
build="$cache/caf-tsan-build"
jobs="${TROUPE_JOBS:-$(nproc)}"
# -include limits: 0.17.6's receive_buffer.hpp misses <limits> for GCC 12 (Debian patches it too).
grep -q 'CAF_VERSION 1706' "$src/libcaf_core/caf/config.hpp" ||
  { echo "build_caf_tsan: $src is not CAF 0.17.6 (libcaf_core/caf/config.hpp)" >&2; exit 1; }
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer -include limits" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread -DCAF_LOG_LEVEL=QUIET -DCAF_NO_UNIT_TESTS=yes \
  -DCAF_NO_EXAMPLES=yes -DCAF_NO_TOOLS=yes -DCAF_NO_PYTHON=yes -DCAF_NO_OPENSSL=yes -DCAF_NO_OPENCL=yes \
  -DCAF_NO_BENCHMARKS=yes -DCAF_NO_SUMMARY=yes >/dev/null
cmake --build "$build" -j "$jobs" --target libcaf_core_shared libcaf_io_shared
mkdir -p "$prefix/lib"
cp -a "$build"/lib/libcaf_core.so* "$build"/lib/libcaf_io.so* "$prefix/lib/"
echo "build_caf_tsan: instrumented CAF in $prefix/lib:"
ls -la "$prefix/lib"
