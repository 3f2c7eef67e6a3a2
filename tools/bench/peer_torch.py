"""Helpers shared by the PyTorch peers of the benchmark."""
import time

import torch

from peer_runtime import loaded_libraries


def moments(g):
    """Across-replica sums the sgd-lab engine reads back: sum_r d_r and sum_r d_r^2, d_r = ||g_r - mean||^2."""
    dev = g - g.mean(0, keepdim=True)
    per_run = dev.square().sum((1, 2))
    return per_run.sum().item(), per_run.square().sum().item()


def use_device(cfg):
    """The peer's device: cfg["device"] ("cpu" unless the GPU check says "cuda"), made torch's
    default so that every tensor and module below is created on it (torch >= 2.0 for a GPU)."""
    device = cfg.get("device", "cpu")
    if device != "cpu":
        if not torch.cuda.is_available():
            raise SystemExit(f"device {device!r} asked for, but torch {torch.__version__} sees no CUDA device")
        torch.set_default_device(device)
    return device


def sync():
    """Waits for the GPU's queue, so that a step's time is the device's."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(step, lr, warmup, steps):
    """Seconds of each of `steps` calls of step(lr) after `warmup` untimed ones, without autograd."""
    with torch.no_grad():
        for _ in range(warmup):
            step(lr)
        sync()
        seconds = []
        for _ in range(steps):
            t = time.perf_counter()
            step(lr)
            sync()
            seconds.append(time.perf_counter() - t)
    return seconds


def runtime():
    """The libraries this process loaded and torch's thread settings (after the timed steps)."""
    out = {"libraries": loaded_libraries(), "parallel": [l.strip() for l in torch.__config__.parallel_info().splitlines() if "threads" in l.lower() or "backend" in l.lower()]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = {"device": torch.cuda.get_device_name(), "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    return out


def sgemm_peak(reps=5):
    """The machine's float32 GEMM rate in GFLOP/s: torch.mm of 1024^3, the median of `reps`."""
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    c = torch.empty(1024, 1024)
    torch.mm(a, b, out=c)
    sync()
    best = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        sync()
        best.append(time.perf_counter() - t)
    best.sort()
    return 2 * 1024**3 / best[len(best) // 2] / 1e9
