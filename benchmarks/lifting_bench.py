"""Lifter training throughput (samples/s): poselab's batched path against a straightforward per-sample loop.

    python benchmarks/lifting_bench.py [--threads 2] [--rounds 5] [--steps 20] [--linear-size 1024] [--device cpu]

Both train Martinez et al.'s lifter (1024 units, two residual blocks, dropout 0.5) with the reference recipe: batch
64, Adam (lr 1e-3), MSE on dataset-normalised root-relative 3D, gradient norm clipped at 1, and orthogonal
augmentation (a random rotation of each 3D pose about its root, re-projected through its camera), on 3D poses of
the shipped mocap clips seen by virtual cameras.

- poselab: the `lift3d` task's path — an index dataset, the batch gathered from tensors, augmented
  (`random_rotations`, `rotate_project`) and normalised in one go inside `LiftTask.loss`;
- official-style: a per-sample `Dataset` (`poselab.data.pipelines.LiftingDataset`: numpy rotation, projection and
  normalisation per pose, a dict of tensors per sample) through a `DataLoader` (batch 64, shuffle, collate).

The two alternate round by round in one process on the same threads, so a busy machine slows both alike; the
median over rounds is printed as `lifter: N samples/s, official-style M samples/s = R x`, after a line timing the
data paths alone (batch preparation without the network).
"""
import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from poselab.data.pipelines import LiftingDataset
from poselab.lifting import IN_IDX, OUT_IDX, IndexDataset, Lifter, LiftTask, cached_lifting_stats, mocap_pairs
from poselab.models.core import create_model
from poselab.train import RunConfig


def make_optimizer(model):
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)


def official_data(pairs, stats, batch=64):
    "The per-sample path alone: samples → collated batch of inputs and targets."
    ds = LiftingDataset(pairs.p2, pairs.p3, "h36m", focal=pairs.focal, principal=pairs.principal, stats=stats,
                        rotation="vertical", input_joints=IN_IDX, output_joints=OUT_IDX, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=0)
    it = iter(loader)

    def step():
        nonlocal it
        try: b = next(it)
        except StopIteration: it = iter(loader); b = next(it)
        return b["input"], b["target"]
    return step


def batched_data(pairs, stats, device, batch=64):
    "The batched path alone: indices → augmented, normalised inputs and targets."
    from poselab.lifting import ROOT, augment_batch
    model = Lifter(torch.nn.Identity()).set_stats(stats).to(device)
    t = pairs.tensors(device)
    g = torch.Generator(device=device).manual_seed(0)

    def step():
        i = torch.randint(len(pairs), (batch,), generator=g, device=device)
        p2, p3 = augment_batch(t["p2"][i], t["p3"][i], t["focal"][i], t["principal"][i], t["up"][i], g)
        return model.encode_2d(p2[:, IN_IDX]), model.encode_3d(p3 - p3[:, ROOT:ROOT + 1])
    return step


def official_style(pairs, stats, linear_size, device, batch=64):
    "Per-sample dataset + DataLoader + the usual training step."
    ds = LiftingDataset(pairs.p2, pairs.p3, "h36m", focal=pairs.focal, principal=pairs.principal, stats=stats,
                        rotation="vertical", input_joints=IN_IDX, output_joints=OUT_IDX, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=0)
    model = create_model("linear_lifter", linear_size=linear_size).to(device).train()
    opt = make_optimizer(model)
    it = iter(loader)

    def step():
        nonlocal it
        try: b = next(it)
        except StopIteration: it = iter(loader); b = next(it)
        x, y = b["input"].to(device), b["target"].to(device)
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    return step


def batched(pairs, stats, linear_size, device, batch=64):
    "The lift3d task's loss on index batches."
    cfg = RunConfig(task="lift3d", dataset="mocap", logger="none", progress=False, options={"augment": True})
    task = LiftTask(cfg)
    task.train_pairs, task.stats = pairs, stats
    model = Lifter(create_model("linear_lifter", linear_size=linear_size)).set_stats(stats).to(device).train()
    opt = make_optimizer(model)
    ds = IndexDataset(len(pairs))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=0)
    it = iter(loader)

    def step():
        nonlocal it
        try: b = next(it)
        except StopIteration: it = iter(loader); b = next(it)
        loss = task.loss(model, b, device)
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="training steps per configuration and round")
    ap.add_argument("--linear-size", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    pairs = mocap_pairs((-10, 10), "train", views=1)
    import tempfile
    with tempfile.TemporaryDirectory() as d: stats = cached_lifting_stats(pairs, d)
    runs = {"lifter": batched(pairs, stats, a.linear_size, device), "official-style": official_style(pairs, stats, a.linear_size, device)}
    for s in runs.values():
        for _ in range(3): s()                                   # warm-up
    rates = {k: [] for k in runs}
    for _ in range(a.rounds):
        for k, s in runs.items():
            if device.type == "cuda": torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(a.steps): s()
            if device.type == "cuda": torch.cuda.synchronize()
            rates[k].append(64 * a.steps / (time.perf_counter() - t))
    data = {"batched": batched_data(pairs, stats, device), "per-sample": official_data(pairs, stats)}
    drates = {k: [] for k in data}
    for _ in range(a.rounds):
        for k, s in data.items():
            t = time.perf_counter()
            for _ in range(10 * a.steps): s()
            drates[k].append(64 * 10 * a.steps / (time.perf_counter() - t))
    n, m = (statistics.median(rates[k]) for k in ("lifter", "official-style"))
    dn, dm = (statistics.median(drates[k]) for k in ("batched", "per-sample"))
    print(f"data path alone: batched {dn:.0f} samples/s, per-sample {dm:.0f} samples/s = {dn / dm:.1f} x")
    print(f"({len(pairs)} training poses, linear_size {a.linear_size}, {a.threads} threads, {a.device}, "
          f"{a.rounds} rounds x {a.steps} steps)")
    print(f"lifter: {n:.0f} samples/s, official-style {m:.0f} samples/s = {n / m:.2f} x")


if __name__ == "__main__":
    main()
