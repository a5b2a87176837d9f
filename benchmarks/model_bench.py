"""Training-step and inference throughput (images/s) of poselab pose models.

Examples::

    python benchmarks/model_bench.py                      # CPU: eager and channels_last
    python benchmarks/model_bench.py --compile            # adds torch.compile variants (90+ s of compilation each)
    python benchmarks/model_bench.py --models pose_resnet_50 --iters 10

On a GPU the same variants run under bf16 autocast. On a shared CPU, compare numbers from one run only;
setting ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296``
speeds up both eager variants (keep it identical between runs you compare).
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch

from poselab.models.core import create_model, list_models


def _tensors(out):
    "Flatten a model output (tensor, or lists/dicts of tensors) to a list of tensors."
    if isinstance(out, torch.Tensor): return [out]
    if isinstance(out, dict): return [t for v in out.values() for t in _tensors(v)]
    return [t for v in out for t in _tensors(v)]


def _sync(device: torch.device):
    if device.type == "cuda": torch.cuda.synchronize()


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def bench_variant(name: str, size: tuple[int, int], device: torch.device, channels_last: bool, compile: bool,
                  batch_infer: int, batch_train: int, iters: int, warmup: int) -> tuple[float, float]:
    "Images per second for inference and for one SGD training step, for one model variant."
    torch.manual_seed(0)
    model = create_model(name).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    run = torch.compile(model) if compile else model

    def timed(step, batch):
        for _ in range(warmup): step()
        _sync(device); t = time.perf_counter()
        for _ in range(iters): step()
        _sync(device)
        return batch * iters / (time.perf_counter() - t)

    x = torch.randn(batch_infer, 3, *size, device=device).to(memory_format=fmt)
    model.eval()
    def infer():
        with torch.inference_mode(), _autocast(device): run(x)
    ips_infer = timed(infer, batch_infer)

    xt = torch.randn(batch_train, 3, *size, device=device).to(memory_format=fmt)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    def train():
        with _autocast(device):
            loss = sum(o.float().square().mean() for o in _tensors(run(xt)))
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    ips_train = timed(train, batch_train)
    return ips_infer, ips_train


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["pose_resnet_50", "pose_hrnet_w32"])
    p.add_argument("--size", nargs=2, type=int, default=(256, 192), metavar=("H", "W"))
    p.add_argument("--batch-infer", type=int, default=8)
    p.add_argument("--batch-train", type=int, default=4)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="also time torch.compile variants (slow to compile)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    available = set(list_models())
    variants = [("eager", False, False), ("channels_last", True, False)]
    if a.compile: variants += [("compile", False, True), ("compile+channels_last", True, True)]
    print(f"device {device}{' (bf16 autocast)' if device.type == 'cuda' else f', {torch.get_num_threads()} threads'}, "
          f"input {a.size[0]}x{a.size[1]}, batch {a.batch_infer} inference / {a.batch_train} training, "
          f"{a.iters} timed iterations after {a.warmup} warm-up, torch {torch.__version__}")
    print(f"{'model':<18} {'variant':<22} {'infer img/s':>12} {'train img/s':>12}")
    for name in a.models:
        if name not in available:
            print(f"{name:<18} (not registered; skipped)"); continue
        for label, cl, comp in variants:
            inf, tr = bench_variant(name, tuple(a.size), device, cl, comp, a.batch_infer, a.batch_train,
                                    a.iters, a.warmup)
            print(f"{name:<18} {label:<22} {inf:>12.2f} {tr:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
