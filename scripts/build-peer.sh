#!/bin/sh
# build-peer.sh - build the peer, llama.cpp, from the sources inside the
# llama-cpp-python sdist (../shared/docs/peers.md), once per machine.
#
#   sh scripts/build-peer.sh            prints the directory of the build
#
# Result, under ${SINKLLM_CACHE:-~/.cache/sinkllm}/llama.cpp-$VER-$TIER:
#   bin/          llama-bench, llama-batched-bench, llama-perplexity,
#                 llama-quantize, llama-server, llama-cli and the shared
#                 libraries (libllama.so, libggml*.so)
#   py/llama_cpp  the sdist's pure-Python binding, its lib/ pointing at bin/,
#                 so `PYTHONPATH=<dir>/py python -c 'import llama_cpp'` uses
#                 this very build (no second compilation through pip)
# TIER=native (default), avx2 (-DGGML_NATIVE=OFF, AVX2+FMA+F16C only) or
# avx512 (-DGGML_NATIVE=OFF, AVX-512 F/BW/VL/DQ + VNNI, AMX off: the peer of
# sinkllm's avx512 tier on an AMX machine; not yet built on any machine).
# Needs cmake, ninja, a C++ compiler and pip (for the sdist); about 10
# minutes on 2 cores the first time, nothing afterwards.
set -eu
VER=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
TIER=${TIER:-native}
CACHE=${SINKLLM_CACHE:-$HOME/.cache/sinkllm}
DIR=$CACHE/llama.cpp-$VER-$TIER
if [ -x "$DIR/bin/llama-bench" ] && [ -e "$DIR/py/llama_cpp/lib/libllama.so" ]; then
    echo "$DIR"
    exit 0
fi
mkdir -p "$CACHE"
SRC=$CACHE/llama_cpp_python-$VER
if [ ! -d "$SRC/vendor/llama.cpp" ]; then
    python3 -m pip download -q --no-deps --no-binary :all: -d "$CACHE" "llama-cpp-python==$VER" >&2
    tar -xzf "$CACHE/llama_cpp_python-$VER.tar.gz" -C "$CACHE"
fi
case $TIER in
native) ISA="-DGGML_NATIVE=ON" ;;
avx2) ISA="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF \
-DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
avx512) ISA="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_BF16=OFF \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
*) echo "build-peer.sh: TIER must be native, avx2 or avx512" >&2; exit 2 ;;
esac
B=$CACHE/build-$VER-$TIER
# shellcheck disable=SC2086
cmake -S "$SRC/vendor/llama.cpp" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release $ISA \
    -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF >&2
cmake --build "$B" -j "$(nproc)" --target llama llama-bench llama-batched-bench \
    llama-perplexity llama-quantize llama-server llama-cli >&2
# llama.cpp puts programs and libraries in its build's bin/ (their RPATH)
mkdir -p "$DIR/py"
rm -rf "$DIR/bin"
ln -s "$B/bin" "$DIR/bin"
rm -rf "$DIR/py/llama_cpp"
cp -r "$SRC/llama_cpp" "$DIR/py/llama_cpp"
rm -rf "$DIR/py/llama_cpp/lib"
ln -s "$DIR/bin" "$DIR/py/llama_cpp/lib"
echo "$DIR"
