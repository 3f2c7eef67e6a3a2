#!/usr/bin/env bash
# The device check, for a Linux x86-64 machine with an NVIDIA GPU and python3 with CUDA's PyTorch,
# and nothing from a network: unpacks the kit that `node tools/device/pack.mjs` built here
# (tools/device/build/sgd-lab-device.tar.xz: Node.js, the built project, the Vulkan loader, MNIST),
# points Vulkan at the NVIDIA driver, and runs tools/device/gpu-check.mjs, which writes gpu.json
# and gpu-section.md (the "gpu" section of BENCHMARKS.md) into $OUT.
#
#   bash tools/device/check.sh [gpu-check options, e.g. --smoke or --rounds 2]
#
# Environment: OUT (where results go; default ./gpu-check-out), SGD_LAB_KIT (the archive),
# SGD_LAB_PYTHON (the Python with PyTorch; default python3), SGD_LAB_BUDGET_S (default 420).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kit=${SGD_LAB_KIT:-}
if [ -z "$kit" ]; then
  for f in "$here/build/sgd-lab-device.tar.xz" "$here/build/sgd-lab-device.tar.gz"; do [ -f "$f" ] && kit=$f && break; done
fi
out=${OUT:-$PWD/gpu-check-out}
mkdir -p "$out"
if [ -z "$kit" ] || [ ! -f "$kit" ]; then
  echo "check.sh: no kit (build it with: node tools/device/pack.mjs; it goes to tools/device/build/)" >&2
  exit 66
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/sgd-lab-device.XXXXXX")
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
# tar with xz where the machine has it, else Python's tarfile (the machine has Python for PyTorch).
if ! tar -xaf "$kit" -C "$work" 2>/dev/null; then
  "${SGD_LAB_PYTHON:-python3}" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$kit" "$work" ||
    { echo "check.sh: could not unpack $kit (neither tar with xz nor Python's tarfile)" >&2; exit 66; }
fi
export PATH="$work/node/bin:$PATH"

# The Vulkan loader: the system's when it has one, else the kit's.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
  export LD_LIBRARY_PATH="$work/vulkan/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  loader="$work/vulkan/lib (the kit's)"
else
  loader="the system's ($(ldconfig -p | awk '/libvulkan\.so\.1 /{print $NF; exit}'))"
fi
# The NVIDIA ICD: the driver's JSON where it is installed, else one written for its library.
icd=""
for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json /etc/vulkan/icd.d/nvidia_icd.x86_64.json; do
  [ -f "$f" ] && icd=$f && break
done
if [ -z "$icd" ]; then
  lib=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia\.so\.0 /{print $NF; exit}')
  [ -z "$lib" ] && lib=$(ls /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0 /usr/lib64/libGLX_nvidia.so.0 2>/dev/null | head -1)
  if [ -n "$lib" ]; then
    icd="$work/nvidia_icd.json"
    printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.3.0"}}\n' "$lib" > "$icd"
  fi
fi
[ -n "$icd" ] && export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"

{
  echo "kit: $kit ($(du -h "$kit" | cut -f1)), unpacked in $(( $(date +%s) - t0 )) s"
  echo "node: $(command -v node) $(node --version)"
  echo "python: $(command -v "${SGD_LAB_PYTHON:-python3}" || echo absent)"
  echo "vulkan loader: $loader"
  echo "vulkan ICD: ${icd:-none found (no NVIDIA Vulkan driver: Dawn falls back to OpenGL ES, else finds no adapter)}"
  if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; else echo "nvidia-smi: absent"; fi
} | tee "$out/environment.txt"

cd "$work/app" || exit 66
node tools/device/gpu-check.mjs --out "$out" --data-dir "$work/data" --python "${SGD_LAB_PYTHON:-python3}" --budget-s "${SGD_LAB_BUDGET_S:-420}" "$@" 2>"$out/stderr.txt"
rc=$?
echo "gpu-check exit $rc after $(( $(date +%s) - t0 )) s in all" | tee -a "$out/environment.txt"
exit $rc
