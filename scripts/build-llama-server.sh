#!/usr/bin/env bash
# Build llama.cpp's HTTP server (`llama-server`) once, for the tests against a real inference
# server (tests/test_llamacpp_server.py): `make llama-server` runs this when the binary is missing.
#
#   scripts/build-llama-server.sh llama-cpp-python==0.3.36 .cache/llama-server
#
# The source is the llama.cpp that the PyPI sdist of llama-cpp-python vendors (PyPI is what this
# project's machines reach). We build llama.cpp's own server rather than llama-cpp-python[server]:
# the latter's /v1/completions takes text prompts only and keys top log-probabilities by token
# text, so a tree's exact token ids could not be sent or read back; llama-server takes token-id
# prompts and returns each top token's id (the `llama.cpp` dialect of inferviz/backends).
set -euo pipefail
spec=${1:?usage: build-llama-server.sh PIP_SPEC DEST_DIR}
dest=${2:?usage: build-llama-server.sh PIP_SPEC DEST_DIR}
dest=${dest%/}
python=${PYTHON:-.venv/bin/python}
jobs=$(nproc 2>/dev/null || echo 2)
if ! command -v cmake >/dev/null 2>&1; then
  echo "build-llama-server: cmake is needed (apt-get install cmake)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
echo "build-llama-server: fetching the $spec sdist"
"$python" -m pip download -q --no-deps --no-binary :all: "$spec" -d "$work"
tar -xzf "$work"/*.tar.gz -C "$work" --wildcards '*/vendor/llama.cpp/*'
src=$(echo "$work"/*/vendor/llama.cpp)
# Not -march=native: on a CPU with AMX (Sapphire Rapids and later) a native build uses AMX
# tiles, which a container or VM that has not been granted them (arch_prctl XCOMP_PERM) answers
# with SIGSEGV at the first decode. AVX2/FMA/F16C run on every x86-64 server of the last decade;
# LLAMA_CPU_FLAGS overrides (e.g. "-DGGML_NATIVE=ON" for a machine of your own).
if [ "$(uname -m)" = "x86_64" ]; then
  default_cpu_flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
else
  default_cpu_flags=""
fi
cpu_flags=${LLAMA_CPU_FLAGS-$default_cpu_flags}
echo "build-llama-server: building llama-server with $jobs jobs (a few minutes, once)"
if ! { cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
         -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
         -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
         -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF $cpu_flags \
       && cmake --build "$work/build" --target llama-server -j "$jobs"; } >"$work/build.log" 2>&1
then
  tail -40 "$work/build.log" >&2
  echo "build-llama-server: the build failed (log above)" >&2
  exit 1
fi
mkdir -p "$dest"
cp "$work/build/bin/llama-server" "$dest/llama-server.tmp"
mv "$dest/llama-server.tmp" "$dest/llama-server"  # a half-copied binary never looks built
echo "build-llama-server: $dest/llama-server built in $(( $(date +%s) - started )) s"
