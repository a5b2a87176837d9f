"""Lifter training throughput (samples/s): the engine's `lift3d` training against the original implementation's loop.

    python benchmarks/lifting_bench.py [--threads 2] [--rounds 5] [--steps 20] [--linear-size 1024] [--profile]

Both train Martinez et al.'s lifter (1024 units, two residual blocks, batch norm, dropout 0.5) with the original
recipe: batch 64, Adam (lr 1e-3), MSE on dataset-normalised root-relative 3D, gradient norm clipped at 1, on the
3D poses of the shipped mocap clips seen by one virtual camera per frame (6,524 training poses).

- lifter: `poselab.train.train` itself, `task="lift3d"` (`--steps` steps per round, `limit_batches`), timed by
  the engine's own `train_images_per_s` (data + step time of every training step; set-up, validation and
  checkpoints excluded): an index dataset through the engine's loader, the batch gathered from tensors and
  normalised in `LiftTask.loss`, the NaN guard, clipping, the task's optimiser (fused Adam) and schedule;
- official-style: the authors' PyTorch loop — the whole training set normalised once in numpy, a per-sample
  `Dataset` whose `__getitem__` returns one (input, target) pair of tensors, a `DataLoader` (batch 64, shuffle,
  default collate), `torch.optim.Adam`, `clip_grad_norm_`, the learning rate set every step, `loss.item()`.

The original code does not augment (neither the authors' TensorFlow code nor its PyTorch port rotate poses), so
the headline line is without augmentation on both sides. A second line compares the orthogonal augmentation:
`augment=True` in the engine against a per-sample numpy version (`poselab.data.pipelines.LiftingDataset`:
rotation, projection and normalisation of one pose per `__getitem__`).

Rounds alternate in one process on the same threads (a busy machine slows both alike); medians over rounds are
printed as `lifter: N samples/s, official-style M samples/s = R x`. `--profile` adds a table of milliseconds per
step by phase (data, forward + loss, backward, clipping, optimiser) for both sides.
"""
import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from poselab.data.pipelines import LiftingDataset
from poselab.lifting import IN_IDX, OUT_IDX, ROOT, LiftTask, cached_lifting_stats, mocap_pairs
from poselab.models.core import create_model
from poselab.train import RunConfig, ResumableBatchSampler, SeededDataset, _collate, train


class OfficialPairs(torch.utils.data.Dataset):
    "The authors' PyTorch dataset: pre-normalised arrays, one (input, target) pair of tensors per `__getitem__`."
    def __init__(self, inp: np.ndarray, out: np.ndarray): self.inp, self.out = inp, out
    def __len__(self) -> int: return len(self.inp)
    def __getitem__(self, i): return torch.from_numpy(self.inp[i]).float(), torch.from_numpy(self.out[i]).float()


def official_dataset(pairs, stats, augment: bool):
    if augment:                                          # per-sample numpy rotation + projection + normalisation
        ds = LiftingDataset(pairs.p2, pairs.p3, "h36m", focal=pairs.focal, principal=pairs.principal, stats=stats,
                            rotation="vertical", input_joints=IN_IDX, output_joints=OUT_IDX, seed=0)
        return ds, lambda b: (b["input"], b["target"])
    rel = pairs.p3 - pairs.p3[:, ROOT:ROOT + 1]          # normalised once, as the authors' data utilities do
    inp = ((pairs.p2 - stats["mean_2d"]) / stats["std_2d"])[:, IN_IDX].reshape(len(pairs), -1)
    out = ((rel - stats["mean_3d"]) / stats["std_3d"])[:, OUT_IDX].reshape(len(pairs), -1)
    return OfficialPairs(inp, out), lambda b: b


def official_style(pairs, stats, linear_size, augment: bool, lr=1e-3, decay=0.96, decay_steps=100000):
    "The authors' training loop; returns `step(timer)`, timer(phase) called after each phase."
    ds, unpack = official_dataset(pairs, stats, augment)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, drop_last=True, num_workers=0)
    model = create_model("linear_lifter", linear_size=linear_size).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    it, n = iter(loader), 0

    def step(mark=lambda phase: None):
        nonlocal it, n
        try: b = next(it)
        except StopIteration: it = iter(loader); b = next(it)
        x, y = unpack(b)
        mark("data")
        for g in opt.param_groups: g["lr"] = lr * decay ** (n / decay_steps)
        loss = F.mse_loss(model(x), y)
        mark("forward + loss")
        opt.zero_grad(); loss.backward()
        mark("backward")
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1)
        mark("clip")
        opt.step(); loss.item(); n += 1
        mark("optimiser")
    return step


def lifter_config(out, linear_size, steps, augment, run_name) -> RunConfig:
    return RunConfig(task="lift3d", dataset="mocap", data_root=str(out), output_dir=str(out), run_name=run_name,
                     epochs=1, limit_batches=steps, logger="none", progress=False, log_images=False,
                     model_kwargs={"linear_size": linear_size},
                     options={"augment": augment, "mocap_views": 1, "val_elevations": [[-10.0, 10.0]]})


def lifter_rate(out, linear_size, steps, augment, k) -> float:
    "One short engine run; its own training throughput (samples/s)."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train(lifter_config(out, linear_size, steps, augment, f"bench_{augment}_{k}"))["train_images_per_s"]


def lifter_profile(out, linear_size, augment):
    "The engine's step body for `lift3d`, phase by phase (the same calls, in the same order, as `poselab.train.train`)."
    cfg = lifter_config(out, linear_size, 10 ** 6, augment, "profile")
    task = LiftTask(cfg)
    train_ds, _ = task.datasets()
    model = task.build_model().train()
    opt, sched = task.build_optimizer(model, 10 ** 6)
    sampler = ResumableBatchSampler(len(train_ds), cfg.batch_size, 0, cfg.seed)
    loader = torch.utils.data.DataLoader(SeededDataset(train_ds), batch_sampler=sampler, num_workers=0,
                                         collate_fn=_collate, generator=torch.Generator().manual_seed(cfg.seed))
    it, step_n = iter(loader), 0
    dev = torch.device("cpu")

    def step(mark=lambda phase: None):
        nonlocal it, step_n
        try: batch = next(it)
        except StopIteration: it = iter(loader); batch = next(it)
        task.step = step_n
        mark("data")
        loss = task.loss(model, batch, dev)              # gathers, normalises (augments) the batch, forward, MSE
        finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
        assert finite.item() == 1
        mark("forward + loss")
        opt.zero_grad(set_to_none=True); loss.backward()
        mark("backward")
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        mark("clip")
        opt.step(); sched.step(); loss.item(); step_n += 1
        mark("optimiser")
    return step


def profile(steps: dict, n: int) -> dict:
    "Median milliseconds per phase over `n` alternating steps of each side."
    acc = {k: {} for k in steps}
    for _ in range(n):
        for k, s in steps.items():
            t = [time.perf_counter()]
            def mark(phase, t=t, d=acc[k]):
                now = time.perf_counter(); d.setdefault(phase, []).append(now - t[0]); t[0] = now
            s(mark)
    return {k: {p: 1e3 * statistics.median(v) for p, v in d.items()} for k, d in acc.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="training steps per side and round")
    ap.add_argument("--linear-size", type=int, default=1024)
    ap.add_argument("--no-augment-line", action="store_true", help="only the headline (no augmentation) comparison")
    ap.add_argument("--profile", action="store_true", help="milliseconds per step by phase, both sides")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pairs = mocap_pairs((-10, 10), "train", views=1)     # the poses the engine builds for these options (seed 0)
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        stats = cached_lifting_stats(pairs, out)
        for augment in ((False,) if a.no_augment_line else (False, True)):
            official = official_style(pairs, stats, a.linear_size, augment)
            for _ in range(3): official()                 # warm-up
            lifter_rate(out, a.linear_size, 3, augment, "warm")
            rates = {"lifter": [], "official-style": []}
            for r in range(a.rounds):
                rates["lifter"].append(lifter_rate(out, a.linear_size, a.steps, augment, r))
                t = time.perf_counter()
                for _ in range(a.steps): official()
                rates["official-style"].append(64 * a.steps / (time.perf_counter() - t))
            assert torch.get_num_threads() == a.threads
            n, m = (statistics.median(rates[k]) for k in ("lifter", "official-style"))
            print(f"{'with orthogonal augmentation (both sides): ' if augment else ''}"
                  f"lifter: {n:.0f} samples/s, official-style {m:.0f} samples/s = {n / m:.2f} x", flush=True)
            if a.profile:
                prof = profile({"lifter": lifter_profile(out, a.linear_size, augment), "official-style": official},
                               10 * a.rounds)
                phases = list(prof["lifter"])
                print(f"  ms/step (median)  " + "".join(f"{p:>16}" for p in phases) + f"{'total':>10}")
                for k, v in prof.items():
                    print(f"  {k:<17}" + "".join(f"{v[p]:>16.1f}" for p in phases) + f"{sum(v.values()):>10.1f}")
        print(f"({len(pairs)} training poses, linear_size {a.linear_size}, batch 64, {a.threads} threads "
              f"(torch.get_num_threads() = {torch.get_num_threads()} on both sides), {a.rounds} rounds x {a.steps} steps)")


if __name__ == "__main__":
    main()
