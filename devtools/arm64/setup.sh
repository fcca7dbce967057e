#!/bin/bash
# Prototype: run slmkit's own runtime on emulated arm64 (aarch64) under qemu user mode.
# Idempotent: every step skips what already exists. Run as root on Debian 12 (bookworm), x86_64.
#
# Everything it fetches or builds goes to out/arm64/ (git-ignored; SLMKIT_ARM64_STATE moves it).
#
#   devtools/arm64/setup.sh                 # qemu, sysroot, wheels, slmkit package links, smoke test
#   BUILD_LLAMA=1 devtools/arm64/setup.sh   # also cross-compile llama.cpp for aarch64 (long: ~220 C/C++ files)
#   NO_QEMU10=1 devtools/arm64/setup.sh     # skip qemu 10 from bookworm-backports (then SME is mis-emulated, see NOTES.md)
#
# Afterwards:  out/arm64/py-arm64 SCRIPT.py      (QEMU_CPU=max|max,sme=off|neoverse-n1|cortex-a72|cortex-a53)
#              devtools/arm64/matrix.sh         (host vs arm64 logits for the demo's ONNX artifacts)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE="${SLMKIT_ARM64_STATE:-$REPO/out/arm64}"   # the state: sysroot, wheels, qemu 10, builds
mkdir -p "$HERE"
HOSTPY="$REPO/.venv/bin/python"
SYSROOT="$HERE/sysroot"
SITE="$HERE/site-packages"
NICE="nice -n 19"
cd "$HERE"
log() { printf '\n== %s\n' "$*"; }

# 1. qemu-user-static (7.2 in bookworm) and the arm64 dpkg architecture (for apt-get download)
if ! command -v qemu-aarch64-static >/dev/null; then
  log "installing qemu-user-static"
  apt-get update && $NICE apt-get install -y qemu-user-static
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  log "adding the arm64 dpkg architecture"
  dpkg --add-architecture arm64 && apt-get update
fi

# 2. aarch64 sysroot: Debian bookworm's python3.11 and the libraries it and the wheels load
ARM_DEBS="python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libstdc++6 libgcc-s1
  libgomp1 zlib1g libffi8 libssl3 libexpat1 libbz2-1.0 liblzma5 libsqlite3-0 libcrypt1 libuuid1 libncursesw6
  libtinfo6 libreadline8 libdb5.3"
if [ ! -x "$SYSROOT/usr/bin/python3.11" ]; then
  log "building the aarch64 sysroot"
  mkdir -p debs "$SYSROOT"
  (cd debs && $NICE apt-get download $(for p in $ARM_DEBS; do echo "$p:arm64"; done) media-types)
  for d in debs/*_arm64.deb debs/media-types_*.deb; do dpkg -x "$d" "$SYSROOT"; done
fi
# qemu 7.2 passes the host's x86 /proc/cpuinfo through; pytorch/cpuinfo (inside onnxruntime) then
# segfaults at import. qemu resolves absolute paths under -L first, so an ARM cpuinfo in the sysroot
# fixes it. (qemu 10 emulates /proc/cpuinfo itself and never reads this file.)
if [ ! -f "$SYSROOT/proc/cpuinfo" ]; then
  mkdir -p "$SYSROOT/proc"
  for i in $(seq 0 $(($(nproc) - 1))); do
    printf 'processor\t: %s\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i"
  done > "$SYSROOT/proc/cpuinfo"
fi

# 3. qemu 10.0 from bookworm-backports (static binary, extracted only; nothing installed). qemu 7.2
#    mis-emulates SME: onnxruntime's KleidiAI int8 GEMM gives garbage on -cpu max under 7.2.
if [ -z "${NO_QEMU10:-}" ] && [ ! -x qemu10/qemu-aarch64 ]; then
  log "fetching qemu-user 10.0 from bookworm-backports (private apt state under out/arm64/apt)"
  mkdir -p apt/lists/partial apt/cache/archives/partial
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" > apt/sources.list
  APTO=(-o Dir::Etc::SourceList="$HERE/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
        -o Dir::State::Lists="$HERE/apt/lists" -o Dir::Cache="$HERE/apt/cache" -o APT::Architectures::=amd64)
  $NICE apt-get "${APTO[@]}" update
  (cd debs && $NICE apt-get "${APTO[@]}" download qemu-user/bookworm-backports)
  rm -rf qemu10.tmp && mkdir qemu10.tmp && dpkg -x debs/qemu-user_*bpo12*_amd64.deb qemu10.tmp
  mkdir -p qemu10 && mv qemu10.tmp/usr/bin/qemu-aarch64 qemu10/ && rm -rf qemu10.tmp
fi

# 4. aarch64 wheels, the same versions as the host .venv (host pip, --target, no dependency resolution)
hostver() { "$HOSTPY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
PIPT=(--target "$SITE" --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64
      --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp
      --abi cp311 --abi abi3 --abi none --only-binary=:all: --no-deps)
if [ ! -d "$SITE/onnxruntime" ]; then
  log "installing aarch64 wheels into $SITE"
  pkgs=()
  # slmkit runtime + onnx extra, their import-time deps, and gguf/llama_cpp's pure-Python deps
  for p in numpy onnxruntime onnx tokenizers safetensors click protobuf flatbuffers packaging \
           typing_extensions ml_dtypes diskcache jinja2 markupsafe pyyaml tqdm gguf; do
    pkgs+=("$p==$(hostver $p)")
  done
  $NICE "$HOSTPY" -m pip install "${PIPT[@]}" "${pkgs[@]}"
fi
# llama-cpp-python: PyPI has no aarch64 wheel (sdist only). Its pure-Python part is taken from the
# host .venv; the aarch64 libllama.so comes from step 7 (LLAMA_CPP_LIB_PATH or llama_cpp/lib).
LLPKG="$REPO/.venv/lib/python3.11/site-packages/llama_cpp"
if [ ! -d "$SITE/llama_cpp" ] && [ -d "$LLPKG" ]; then
  mkdir -p "$SITE/llama_cpp"
  (cd "$LLPKG" && tar cf - --exclude=./lib --exclude=__pycache__ .) | tar xf - -C "$SITE/llama_cpp"
fi

# 5. the `slmkit` import name: a directory of links that mirrors pyproject's package-dir mapping
#    (rebuilt every run, so that new modules appear)
log "linking pkg/slmkit from pyproject.toml's package-dir"
python3 - "$REPO" "$HERE/pkg" <<'EOF'
import os, shutil, sys, tomllib
repo, pkg = sys.argv[1], sys.argv[2]
mapping = tomllib.load(open(os.path.join(repo, "pyproject.toml"), "rb"))["tool"]["setuptools"]["package-dir"]
shutil.rmtree(pkg, ignore_errors=True)
root = os.path.join(pkg, "slmkit")
os.makedirs(root)
for entry in sorted(os.listdir(os.path.join(repo, mapping["slmkit"]))):
    if entry != "__pycache__":
        os.symlink(os.path.join(repo, mapping["slmkit"], entry), os.path.join(root, entry))
for name, folder in mapping.items():
    if name == "slmkit":
        continue
    link = os.path.join(pkg, *name.split("."))
    target = os.path.join(repo, folder)
    if os.path.lexists(link):  # already reachable through its parent (slmkit.demo = toolkit/demo)
        assert os.path.realpath(link) == os.path.realpath(target), (name, link, target)
        continue
    os.symlink(target, link)
print(" ", ", ".join(sorted(mapping)))
EOF

# 6. the wrapper: aarch64 python with slmkit and the wheels on its path
cat > py-arm64 <<'EOF'
#!/bin/sh
# Run the emulated aarch64 python3.11 with slmkit and its aarch64 wheels importable.
# QEMU picks the qemu binary (default: qemu10/qemu-aarch64 from bookworm-backports, else qemu-aarch64-static 7.2).
# QEMU_CPU picks the emulated core: max (dotprod, i8mm, SVE2, SME2), max,sme=off, neoverse-n1 (dotprod),
# cortex-a72 / cortex-a53 (no dotprod).
HERE=$(cd "$(dirname "$0")" && pwd)
export QEMU_CPU="${QEMU_CPU:-max}"
export PYTHONPATH="$HERE/pkg:$HERE/site-packages${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPYCACHEPREFIX="$HERE/pycache"   # keep aarch64 .pyc files out of the repository
export PYTHONNOUSERSITE=1
[ -z "$QEMU" ] && { [ -x "$HERE/qemu10/qemu-aarch64" ] && QEMU="$HERE/qemu10/qemu-aarch64" || QEMU=qemu-aarch64-static; }
exec "$QEMU" -L "$HERE/sysroot" "$HERE/sysroot/usr/bin/python3.11" "$@"
EOF
chmod +x py-arm64

# 7. optional: cross-compile llama.cpp (the copy vendored in llama-cpp-python's sdist, same version as
#    the host .venv). One -march per ggml-cpu build, so two builds: libllama + ggml for armv8-a (runs on every
#    arm64 core: A53, A72), and only ggml-cpu again for armv8.6-a+dotprod+i8mm+sve (the kernels of newer
#    cores, Q4_0 repacking with i8mm). llama-lib/<arch>/ holds a complete set for LLAMA_CPP_LIB_PATH.
LLAMA_ARCHES="armv8-a armv8.6-a+dotprod+i8mm+sve"
if [ -n "${BUILD_LLAMA:-}" ]; then
  LLVER=$(hostver llama_cpp_python)
  if ! command -v aarch64-linux-gnu-g++ >/dev/null; then
    $NICE apt-get install -y --no-install-recommends g++-aarch64-linux-gnu gcc-aarch64-linux-gnu
  fi
  mkdir -p src
  if [ ! -d "src/llama_cpp_python-$LLVER" ]; then
    (cd src && $NICE "$HOSTPY" -m pip download "llama-cpp-python==$LLVER" --no-binary :all: --no-deps -d . \
      && $NICE tar xzf "llama_cpp_python-$LLVER.tar.gz")
  fi
  first=""
  for arch in $LLAMA_ARCHES; do
    dir="llama-build-$arch"; lib="llama-lib/$arch"
    [ -f "$lib/libllama.so" ] && { first=${first:-$arch}; continue; }
    log "cross-compiling llama.cpp for aarch64 ($arch)"
    $NICE cmake -S "src/llama_cpp_python-$LLVER/vendor/llama.cpp" -B "$dir" -G Ninja \
      -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
      -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
      -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
      -DCMAKE_INSTALL_RPATH='$ORIGIN' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
      -DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH="$arch" -DGGML_OPENMP=OFF -DGGML_LLAMAFILE=OFF \
      -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
    if [ -z "$first" ]; then
      $NICE ninja -C "$dir" -j "${JOBS:-2}" llama
      first=$arch
    else  # libllama and ggml-base do not depend on the -march: only ggml-cpu is built again
      $NICE ninja -C "$dir" -j "${JOBS:-2}" ggml-cpu
    fi
    mkdir -p "$lib.tmp"
    cp -L "llama-lib/$first"/*.so* "$lib.tmp/" 2>/dev/null || true
    cp -L "$dir"/bin/*.so* "$lib.tmp/"
    rm -rf "$lib" && mv "$lib.tmp" "$lib"
  done
  # then: LLAMA_CPP_LIB_PATH=$HERE/llama-lib/armv8-a ./py-arm64 -c 'import slmkit; slmkit.load("x.gguf", threads=1)'
fi

# 8. smoke test
log "smoke test"
QEMU_CPU=cortex-a72 ./py-arm64 -c 'import platform, numpy, onnxruntime, tokenizers, slmkit
print(platform.machine(), "numpy", numpy.__version__, "onnxruntime", onnxruntime.__version__, "slmkit", slmkit.__version__)'
