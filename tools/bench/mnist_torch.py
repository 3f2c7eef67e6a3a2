"""The mnist-mlp step in PyTorch on the CPU, as an expert would write it: the R replicas' weights
in [R, in, out] tensors, forward and hand-written backward with torch.bmm into buffers allocated
once (no autograd), the across-run moments of every gradient block, and the SGD update.

Input: JSON on stdin {R, b, widths, steps, warmup}. Output: JSON with the seconds per step."""
import json
import os
import sys

import torch

from peer_torch import moments, sgemm_peak, timed, runtime, use_device


def main():
    cfg = json.load(sys.stdin)
    torch.set_num_threads(cfg.get("threads") or os.cpu_count())
    device = use_device(cfg)
    r, b, widths = cfg["R"], cfg["b"], cfg["widths"]
    torch.manual_seed(0)
    ws = [torch.empty(r, i, o).uniform_(-i**-0.5, i**-0.5) for i, o in zip(widths, widths[1:])]
    bs = [torch.empty(r, 1, o).uniform_(-i**-0.5, i**-0.5) for i, o in zip(widths, widths[1:])]
    gw = [torch.empty_like(w) for w in ws]
    gb = [torch.empty_like(v) for v in bs]
    acts = [torch.empty(r, b, n) for n in widths]
    x = acts[0]
    y = torch.zeros(r, b, widths[-1])
    images = torch.rand(8000, widths[0]) * 2 - 1
    labels = torch.randint(0, widths[-1], (8000,))
    layers = len(ws)

    def step(lr):
        idx = torch.randint(0, 8000, (r, b))
        torch.index_select(images, 0, idx.view(-1), out=x.view(r * b, -1))
        y.zero_().scatter_(2, labels[idx].unsqueeze(2), 1.0)
        pre = []
        for k in range(layers):
            z = torch.baddbmm(bs[k], acts[k], ws[k])
            pre.append(z)
            if k < layers - 1:
                torch.clamp(z, min=0, out=acts[k + 1])
        delta = (torch.softmax(pre[-1], 2) - y) / b
        for k in range(layers - 1, -1, -1):
            torch.bmm(acts[k].transpose(1, 2), delta, out=gw[k])
            torch.sum(delta, 1, keepdim=True, out=gb[k])
            if k > 0:
                delta = torch.bmm(delta, ws[k].transpose(1, 2)).mul_(pre[k - 1] > 0)
        stats = [moments(g) for g in gw + gb]
        for w, g in zip(ws + bs, gw + gb):
            w.sub_(g, alpha=lr)
        return stats

    seconds = timed(step, 3e-3, cfg["warmup"], cfg["steps"])
    # The GEMM peak in the same process: how far from it both codes are.
    peak = sgemm_peak()
    json.dump({"seconds": seconds, "device": device, "runtime": runtime(), "sgemmGflops": peak, "threads": torch.get_num_threads(), "torch": torch.__version__}, sys.stdout)


if __name__ == "__main__":
    main()
