"""The deep linear step of gaussian-deeplinear in PyTorch on the CPU, as an expert would write
it: every replica's weights in [R, m, n] tensors, batched products with torch.bmm into buffers
allocated once, in-place updates. Per step: fresh x ~ N(0, I) for every replica, the stochastic
and the full gradient of both layers through Delta = W2 W1 - M* and S_b = X^T X / b, the trace
variances across replicas (with the per-replica squared deviations that confidence intervals
need) of g, of the full gradient and of their difference, the population loss, and the SGD update.

Input: JSON on stdin {R, b, widths, steps, warmup}. Output: JSON with the seconds per step, the
sgemm 1024^3 peak, threads and the BLAS torch uses.
"""
import json
import os
import sys
import time

import torch

from peer_torch import moments, sgemm_peak, timed, runtime, use_device


def main():
    cfg = json.load(sys.stdin)
    # Every core: torch's default here is one thread.
    torch.set_num_threads(cfg.get("threads") or os.cpu_count())
    device = use_device(cfg)
    r, b = cfg["R"], cfg["b"]
    p, h, o = cfg["widths"]
    torch.manual_seed(0)
    w1 = torch.randn(r, h, p) / p**0.5
    w2 = torch.randn(r, o, h) / h**0.5
    teacher = (torch.randn(o, h) / h**0.5) @ (torch.randn(h, p) / p**0.5)
    x = torch.empty(r, b, p)
    s = torch.empty(r, p, p)
    delta = torch.empty(r, o, p)
    e = torch.empty(r, o, p)
    g1, f1, d1 = torch.empty(r, h, p), torch.empty(r, h, p), torch.empty(r, h, p)
    g2, f2, d2 = torch.empty(r, o, h), torch.empty(r, o, h), torch.empty(r, o, h)
    w1t, w2t = w1.transpose(1, 2), w2.transpose(1, 2)

    def step(lr):
        x.normal_()
        torch.bmm(w2, w1, out=delta)
        delta.sub_(teacher)
        torch.bmm(x.transpose(1, 2), x, out=s)
        s.div_(b)
        torch.bmm(delta, s, out=e)
        torch.bmm(w2t, e, out=g1)
        torch.bmm(e, w1t, out=g2)
        torch.bmm(w2t, delta, out=f1)
        torch.bmm(delta, w1t, out=f2)
        torch.sub(g1, f1, out=d1)
        torch.sub(g2, f2, out=d2)
        stats = [moments(t) for t in (g1, g2, f1, f2, d1, d2)]
        loss = 0.5 * delta.square().sum((1, 2))
        w1.sub_(g1, alpha=lr)
        w2.sub_(g2, alpha=lr)
        return stats, loss.mean().item()

    seconds = timed(step, 1e-3, cfg["warmup"], cfg["steps"])
    with torch.no_grad():
        peak = sgemm_peak()
    config = torch.__config__.show()
    blas = "OpenBLAS" if "OpenBLAS" in config or "openblas" in config.lower() else "unknown"
    json.dump({"seconds": seconds, "device": device, "runtime": runtime(), "sgemmGflops": peak, "threads": torch.get_num_threads(), "torch": torch.__version__, "blas": blas}, sys.stdout)


if __name__ == "__main__":
    main()
