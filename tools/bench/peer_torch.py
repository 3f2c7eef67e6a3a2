"""Helpers shared by the PyTorch peers of the benchmark."""
import time

import torch

from peer_runtime import loaded_libraries


def moments(g):
    """Across-replica sums the sgd-lab engine reads back: sum_r d_r and sum_r d_r^2, d_r = ||g_r - mean||^2."""
    dev = g - g.mean(0, keepdim=True)
    per_run = dev.square().sum((1, 2))
    return per_run.sum().item(), per_run.square().sum().item()


def timed(step, lr, warmup, steps):
    """Seconds of each of `steps` calls of step(lr) after `warmup` untimed ones, without autograd."""
    with torch.no_grad():
        for _ in range(warmup):
            step(lr)
        seconds = []
        for _ in range(steps):
            t = time.perf_counter()
            step(lr)
            seconds.append(time.perf_counter() - t)
    return seconds


def runtime():
    """The libraries this process loaded and torch's thread settings (after the timed steps)."""
    return {"libraries": loaded_libraries(), "parallel": [l.strip() for l in torch.__config__.parallel_info().splitlines() if "threads" in l.lower() or "backend" in l.lower()]}
