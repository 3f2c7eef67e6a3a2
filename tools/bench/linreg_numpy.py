"""The Fig. 2(a) Monte Carlo run in plain numpy, the peer of sgd-lab's admission-linreg in the
benchmark. Vectorised over runs as a numpy user would write it: a uniform b-subset per run and
step from argpartition of random keys, batched gathers and einsum, and the same per-step
statistics (trace variances of g_t and grad L(w_t) across runs, mean loss).

Input: one JSON object on stdin (data path, w0, batch sizes, steps, runs, schedule, seed,
repeats). Output: one JSON object with the seconds of each repeat and the last-step variances.
"""
import json
import sys
import time

import numpy as np

from peer_runtime import loaded_libraries


def load(path):
    raw = np.genfromtxt(path, delimiter=",", skip_header=1)
    x = raw[:, 1:8]
    y = raw[:, 8]
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    x = np.hstack([x, np.ones((x.shape[0], 1))])
    return x, y


def run(x, y, w0, b, steps, runs, alpha0, offset, rng):
    n, p = x.shape
    h_mat = x.T @ x / n
    h_vec = x.T @ y / n
    yy = float(y @ y / n)
    w = np.tile(w0, (runs, 1))
    gvar = np.empty(steps)
    fvar = np.empty(steps)
    loss = np.empty(steps + 1)
    for t in range(steps + 1):
        quad = np.einsum("rp,pq,rq->r", w, h_mat, w)
        loss[t] = np.mean(0.5 * (quad - 2 * w @ h_vec + yy))
        if t == steps:
            break
        idx = np.argpartition(rng.random((runs, n)), b - 1, axis=1)[:, :b] if b < n else np.tile(np.arange(n), (runs, 1))
        xb = x[idx]
        res = np.einsum("rbp,rp->rb", xb, w) - y[idx]
        g = np.einsum("rbp,rb->rp", xb, res) / b
        full = w @ h_mat - h_vec
        gvar[t] = g.var(axis=0, ddof=1).sum()
        fvar[t] = full.var(axis=0, ddof=1).sum()
        w -= alpha0 / (t + offset) * g
    return gvar, fvar, loss


def main():
    cfg = json.load(sys.stdin)
    x, y = load(cfg["data"])
    w0 = np.array(cfg["w0"])
    rng = np.random.default_rng(cfg["seed"])
    seconds = []
    last = {}
    for _ in range(cfg["repeats"]):
        start = time.perf_counter()
        for b in cfg["batchSizes"]:
            gvar, fvar, loss = run(x, y, w0, b, cfg["steps"], cfg["runs"], cfg["alpha0"], cfg["offset"], rng)
            last[str(b)] = {"grad_variance": float(gvar[-1]), "full_grad_variance": float(fvar[-1]), "loss": float(loss[-1])}
        seconds.append(time.perf_counter() - start)
    json.dump({"seconds": seconds, "last": last, "numpy": np.__version__, "runtime": {"libraries": loaded_libraries()}}, sys.stdout)


if __name__ == "__main__":
    main()
