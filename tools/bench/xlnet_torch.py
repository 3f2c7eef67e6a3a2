"""The yelp-xlnet encoder step in PyTorch on the CPU, written as an expert would for this model:
the same XLNet-style layer (content, position and segment attention terms with the relative
shift, padding mask before the softmax, post-norm residuals, GELU feed-forward, last-token
summary and a 2-way head), autograd for the backward pass, and per replica the stochastic
gradient kept for the across-run moments and an AdamW step with per-matrix clipping. One step =
R replicas, each on its own batch of b sequences of L tokens.

Input: JSON on stdin {R, b, size: {vocab, layers, dModel, heads, inner, length}, steps, warmup}.
Output: JSON with the seconds per step and the threads.
"""
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

from peer_torch import runtime, sync, use_device


def rel_shift(x, klen):
    b, h, q, p = x.shape
    x = x.reshape(b, h, p, q)[:, :, 1:, :]
    return x.reshape(b, h, q, p - 1)[..., :klen]


class Layer(torch.nn.Module):
    def __init__(self, d, h, inner):
        super().__init__()
        self.h, self.dh = h, d // h
        self.q, self.k, self.v, self.o, self.r = (torch.nn.Linear(d, d, bias=False) for _ in range(5))
        self.rw, self.rr, self.rs = (torch.nn.Parameter(torch.randn(h, self.dh) * 0.02) for _ in range(3))
        self.seg = torch.nn.Parameter(torch.randn(2, h, self.dh) * 0.02)
        self.ln1, self.ln2 = torch.nn.LayerNorm(d, eps=1e-12), torch.nn.LayerNorm(d, eps=1e-12)
        self.ff1, self.ff2 = torch.nn.Linear(d, inner), torch.nn.Linear(inner, d)

    def forward(self, x, pos, segdiff, keymask):
        b, l, d = x.shape
        q = self.q(x).view(b, l, self.h, self.dh)
        k = self.k(x).view(b, l, self.h, self.dh)
        v = self.v(x).view(b, l, self.h, self.dh)
        kr = self.r(pos).view(2 * l, self.h, self.dh)
        ac = torch.einsum("bihd,bjhd->bhij", q + self.rw, k)
        bd = rel_shift(torch.einsum("bihd,jhd->bhij", q + self.rr, kr), l)
        ef2 = torch.einsum("bihd,shd->bhis", q + self.rs, self.seg)
        ef = ef2[..., :1] + (ef2[..., 1:] - ef2[..., :1]) * segdiff
        score = (ac + bd + ef) / math.sqrt(self.dh) + keymask
        av = torch.einsum("bhij,bjhd->bihd", score.softmax(-1), v).reshape(b, l, d)
        x = self.ln1(self.o(av) + x)
        return self.ln2(self.ff2(F.gelu(self.ff1(x))) + x)


class Encoder(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        d = s["dModel"]
        self.emb = torch.nn.Embedding(s["vocab"], d)
        self.mask_emb = torch.nn.Parameter(torch.zeros(1, d))
        self.layers = torch.nn.ModuleList(Layer(d, s["heads"], s["inner"]) for _ in range(s["layers"]))
        self.summary = torch.nn.Linear(d, d)
        self.head = torch.nn.Linear(d, 2)
        l = s["length"]
        pos_seq = torch.arange(l, -l, -1.0)
        inv = 1 / (10000 ** (torch.arange(0, d, 2.0) / d))
        ang = pos_seq[:, None] * inv[None, :]
        self.register_buffer("pos", torch.cat([ang.sin(), ang.cos()], -1))
        last = torch.arange(l) == l - 1
        self.register_buffer("segdiff", (last[:, None] ^ last[None, :]).float())

    def forward(self, ids):
        keymask = (ids == 0).float()[:, None, None, :] * -1e30
        x = self.emb(ids)
        for layer in self.layers:
            x = layer(x, self.pos, self.segdiff, keymask)
        return self.head(torch.tanh(self.summary(x[:, -1])))


def main():
    cfg = json.load(sys.stdin)
    torch.set_num_threads(cfg.get("threads") or os.cpu_count())
    device = use_device(cfg)
    torch.manual_seed(0)
    r, b, s = cfg["R"], cfg["b"], cfg["size"]
    replicas = [Encoder(s) for _ in range(r)]
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3, eps=1e-8, weight_decay=0.01) for m in replicas]
    ids = torch.randint(4, s["vocab"], (r, b, s["length"]))
    ids[:, :, : s["length"] // 4] = 0  # left padding
    labels = torch.randint(0, 2, (r, b))

    def step():
        grads = []
        for m, opt, x, y in zip(replicas, opts, ids, labels):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(m(x), y).backward()
            grads.append(torch.cat([p.grad.reshape(-1) for p in m.parameters() if p.grad is not None]))
            for p in m.parameters():
                if p.grad is not None:
                    torch.nn.utils.clip_grad_norm_([p], 1.0)
            opt.step()
        g = torch.stack(grads)
        dev = (g - g.mean(0, keepdim=True)).square().sum(1)
        return dev.sum().item()

    for _ in range(cfg["warmup"]):
        step()
    sync()
    seconds = []
    for _ in range(cfg["steps"]):
        t = time.perf_counter()
        step()
        sync()
        seconds.append(time.perf_counter() - t)
    json.dump({"seconds": seconds, "device": device, "runtime": runtime(), "threads": torch.get_num_threads(), "torch": torch.__version__}, sys.stdout)


if __name__ == "__main__":
    main()
