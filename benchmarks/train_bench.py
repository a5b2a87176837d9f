"""Training throughput (images/s) of the top-down candidates for CPU runs, and of the data pipeline.

    python benchmarks/train_bench.py [--threads 2] [--rounds 3] [--batch 32]

Each round times every configuration once (forward + backward + Adam step on a fixed batch), alternating the
configurations so that a busy machine slows all of them alike; the median over rounds is printed, with the ratio
to the first configuration (the baseline: SimpleBaseline-R18 with the paper's 256-filter head). The pipeline line
times `TopDownDataset` samples (JPEG decode, warp, targets) from the synthetic world if it has been generated.
"""
import argparse
import statistics
import time
from pathlib import Path

import torch

from poselab.models.core import create_model

CONFIGS = [  # (label, model, model kwargs, (width, height), channels_last)
    ("pose_resnet_18 head 256, 96x128", "pose_resnet_18", {}, (96, 128), False),
    ("pose_resnet_18 head 128, 96x128", "pose_resnet_18", {"deconv_filters": (128, 128, 128)}, (96, 128), False),
    ("pose_resnet_18 head 128, 96x128, channels_last", "pose_resnet_18", {"deconv_filters": (128, 128, 128)}, (96, 128), True),
    ("pose_resnet_18 head 128, 192x256", "pose_resnet_18", {"deconv_filters": (128, 128, 128)}, (192, 256), False),
    ("pose_hrnet_w18_small, 96x128", "pose_hrnet_w18_small", {}, (96, 128), False),
]


def step_time(model, opt, x, y) -> float:
    t = time.perf_counter()
    loss = torch.nn.functional.mse_loss(model(x), y)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return time.perf_counter() - t


def pipeline_rate(n: int = 200) -> float | None:
    root = Path("data/synthetic")
    if not (root / "meta.json").exists(): return None
    from poselab.data.formats import load_dataset
    from poselab.data.pipelines import TopDownDataset
    recs = load_dataset("synthetic", "data", "train", aspect_ratio=0.75)[:n]
    ds = TopDownDataset(recs, input_size=(96, 128), heatmap_size=(24, 32), seed=0)
    t = time.perf_counter()
    for i in range(len(ds)): ds[i]
    return len(ds) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    setups = []
    for label, name, kw, (w, h), cl in CONFIGS:
        m = create_model(name, num_joints=17, **kw).train()
        x = torch.randn(a.batch, 3, h, w)
        if cl: m, x = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        y = torch.zeros_like(m(x[:1]).detach()).expand(a.batch, -1, -1, -1).contiguous()
        opt = torch.optim.Adam(m.parameters(), 1e-3)
        step_time(m, opt, x, y)                                   # warm-up
        setups.append((label, m, opt, x, y))
    times = {s[0]: [] for s in setups}
    for _ in range(a.rounds):
        for label, m, opt, x, y in setups: times[label].append(step_time(m, opt, x, y))
    base = None
    print(f"training throughput, batch {a.batch}, {a.threads} threads, median of {a.rounds} rounds")
    for label, ts in times.items():
        rate = a.batch / statistics.median(ts)
        base = base or rate
        print(f"  {label:50s} {rate:7.1f} images/s  ({rate / base:.2f}x)")
    r = pipeline_rate()
    if r is not None: print(f"  TopDownDataset 96x128 (1 process)                  {r:7.1f} samples/s")


if __name__ == "__main__":
    main()
