"""Summarises a V8 .cpuprofile for BENCHMARKS.md: self time grouped by the TensorFlow.js kernel
(the nearest JavaScript caller of each WebAssembly frame), and by the top JavaScript functions.
Usage: python3 profile-summary.py file.cpuprofile"""
import collections
import json
import sys

prof = json.load(open(sys.argv[1]))
nodes = {n["id"]: n for n in prof["nodes"]}
parent = {}
for n in prof["nodes"]:
    for c in n.get("children", []):
        parent[c] = n["id"]


def label(node_id):
    cf = nodes[node_id]["callFrame"]
    return cf["functionName"] or "(anonymous)", cf["url"].rsplit("/", 1)[-1]


def kernel_of(node_id):
    """First ancestor JS function of the wasm backend or of tfjs-core that names a kernel."""
    n = node_id
    while n in nodes:
        name, url = label(n)
        if url.startswith("tf-backend-wasm") and name not in ("", "(anonymous)", "ccall") and not name.startswith("wasm-"):
            return name.replace("Module._", "")
        n = parent.get(n)
        if n is None:
            break
    return None


by_kernel = collections.Counter()
by_function = collections.Counter()
for sample, dt in zip(prof["samples"], prof["timeDeltas"]):
    name, url = label(sample)
    if name.startswith("wasm-function"):
        by_kernel[kernel_of(sample) or "(wasm, caller unknown)"] += dt
        by_function["WebAssembly kernels"] += dt
    else:
        by_function[f"{name} ({url})" if url else name] += dt
total = sum(by_function.values())
out = {
    "totalSeconds": total / 1e6,
    "kernels": [[k, v / total] for k, v in by_kernel.most_common(8)],
    "functions": [[k, v / total] for k, v in by_function.most_common(10)],
}
json.dump(out, sys.stdout)
