"""Training and inference steps of four pose networks: poselab's engine and predictor against a straightforward loop
that runs the same networks the way the authors' code runs them, alternating in one process on 2 threads.

  pose_hrnet_w32     256x192, batch 8, Adam     (HRNet, top-down, JointsMSELoss with target weights)
  pose_resnet_50     256x192, batch 8, Adam     (SimpleBaseline, the same loss)
  stacked_hourglass  256x256, batch 4, RMSprop  (the hourglass recipe's 2 stacks, MSE summed over the stacks)
  higher_hrnet_w32   512x512, batch 2, Adam     (HigherHRNet, heatmap + associative-embedding loss)

"ours" is what poselab does:
  train  the engine's step (`poselab.train`): a `RunConfig` of the model's task with its default settings, the
         task's `loss`, the engine's optimiser (`build_optimizer`), the finiteness check and the loss read back
         every step, the scheduler step; the batch in the engine's memory format
  infer  the predictor's network (`poselab.predict.Predictor` with its default settings) under its inference
         context, inputs in its memory format, heatmaps to numpy
"official-style" is the plain loop: eager, contiguous NCHW, float32, `torch.optim.Adam`/`RMSprop` with their
defaults, `loss.item()` every step; `model.eval()` + `torch.no_grad()` at inference.

Both sides get the same weights, the same batch and the same loss (`poselab.losses`). Every repeat times each side
once per mode (A/B in one repeat, B/A in the next); a timing is `--iters` steps after `--warmup` untimed ones; the
rate reported is the best repeat (`--stat median` for the median) of each side, in images per second of wall
time (`--clock cpu`: per CPU second of this process divided by the thread count, which other processes on a shared
machine disturb less).

    python benchmarks/model_step_bench.py                           # all four, train and infer, 3 repeats
    python benchmarks/model_step_bench.py --quick                   # 1 repeat, 1 step: a smoke run
    python benchmarks/model_step_bench.py --models pose_resnet_50 --modes infer --repeats 5
    python benchmarks/model_step_bench.py --engine channels_last=false --predictor fuse_bn=false   # an ablation
    python benchmarks/model_step_bench.py --models pose_resnet_50 --modes infer --compile          # + torch.compile

On a machine shared with other work the best repeat is the steadier number; keep the settings identical between
runs you compare.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import yaml

from poselab.losses import BottomUpLoss, JointsMSELoss
from poselab.predict import Predictor
from poselab.train import RunConfig, _heatmaps_out, get_task

MODELS = {
    "pose_hrnet_w32": dict(task="topdown", size=(256, 192), batch=8),
    "pose_resnet_50": dict(task="topdown", size=(256, 192), batch=8),
    "stacked_hourglass": dict(task="hourglass", size=(256, 256), batch=4, kwargs={"num_stacks": 2}),
    "higher_hrnet_w32": dict(task="bottomup", size=(512, 512), batch=2),
}


def _settings(pairs: list[str]) -> dict:
    "`name=value` pairs (YAML values) as a dict."
    out = {}
    for p in pairs or []:
        k, _, v = p.partition("=")
        if not _: raise SystemExit(f"setting {p!r} must read name=value")
        out[k] = yaml.safe_load(v)
    return out


def make_batch(spec: dict, num_joints: int, seed: int = 0) -> dict:
    "A training batch of the model's task, in the layout its dataset collates (random images, plausible targets)."
    g = torch.Generator().manual_seed(seed)
    B, (H, W) = spec["batch"], spec["size"]
    img = torch.randn(B, 3, H, W, generator=g)
    if spec["task"] in ("topdown", "hourglass"):
        target = torch.rand(B, num_joints, H // 4, W // 4, generator=g) ** 8
        weight = (torch.rand(B, num_joints, 1, generator=g) > 0.2).float()
        return {"image": img, "target": target, "target_weight": weight}
    heatmaps, masks, ae = [], [], []
    for s in (4, 2):                                            # the 1/4 and 1/2 resolution stages
        h, w = H // s, W // s
        heatmaps.append(torch.rand(B, num_joints, h, w, generator=g) ** 8)
        masks.append(torch.ones(B, h, w))
        idx = torch.randint(0, h * w, (B, 30, num_joints, 1), generator=g)
        vis = torch.zeros(B, 30, num_joints, 1, dtype=torch.long)
        vis[:, :4] = 1                                          # 4 labelled people per image
        ae.append(torch.cat([idx, vis], -1))
    return {"image": img, "heatmaps": heatmaps, "masks": masks, "ae_indices": ae}


class Ours:
    "The engine's training step and the predictor's forward pass, with their default (or given) settings."
    def __init__(self, name: str, spec: dict, state: dict, engine: dict, predictor: dict):
        H, W = spec["size"]
        self.cfg = RunConfig(task=spec["task"], model=name, model_kwargs=spec.get("kwargs", {}), input_size=(W, H),
                             batch_size=spec["batch"], device="cpu", logger="none", progress=False, **engine)
        self.task = get_task(self.cfg.task)[1](self.cfg)
        self.model = self.task.build_model()
        self.model.load_state_dict(state)
        if self.cfg.channels_last: self.model.to(memory_format=torch.channels_last)       # as `train` does
        self.opt, self.sched = self.task.build_optimizer(self.model, 10 ** 6)
        infer = self.task.build_model(); infer.load_state_dict(state)
        self.pred = Predictor(infer, input_size=(W, H) if spec["task"] != "bottomup" else H, flip_test=False,
                              **predictor)
        self.device = torch.device("cpu")

    def train_step(self, batch: dict) -> float:
        "The body of the engine's loop (`poselab.train.train`), without logging."
        self.model.train()
        if self.cfg.channels_last:
            batch = {**batch, "image": batch["image"].contiguous(memory_format=torch.channels_last)}
        loss = self.task.loss(self.model, batch, self.device)
        if torch.isfinite(loss.detach()).to(torch.float32).reshape(1).item() < 1: raise RuntimeError("non-finite loss")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step(); self.sched.step()
        return loss.item()

    def infer_step(self, x: torch.Tensor) -> list[np.ndarray]:
        "The predictor's forward pass: its network, input memory format and inference context."
        p = self.pred
        with torch.inference_mode():
            x = x.contiguous(memory_format=torch.channels_last) if p.channels_last else x
            return [o.float().cpu().numpy() for o in _heatmaps_out(p.net(x))]


class Official:
    "The plain loop of the authors' code bases: eager NCHW float32, default optimisers, the same losses."
    def __init__(self, name: str, spec: dict, state: dict, model, recipe: dict):
        self.spec, self.model = spec, model
        self.model.load_state_dict(state)
        opt = torch.optim.RMSprop if recipe["optimizer"] == "rmsprop" else torch.optim.Adam
        self.opt = opt(self.model.parameters(), lr=recipe["lr"])
        self.mse = JointsMSELoss(use_target_weight=True)
        self.bottomup = BottomUpLoss(num_joints=17)

    def train_step(self, batch: dict) -> float:
        self.model.train()
        out = self.model(batch["image"])
        if self.spec["task"] == "bottomup":
            hm, push, pull = self.bottomup(out, batch["heatmaps"], batch["masks"], batch["ae_indices"])
            loss = sum(l.mean() for group in (hm, push, pull) for l in group if l is not None)
        else:                                                 # one output, or one per hourglass stack
            loss = sum(self.mse(o, batch["target"], batch["target_weight"]) for o in _heatmaps_out(out))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()

    def infer_step(self, x: torch.Tensor) -> list[np.ndarray]:
        self.model.eval()
        with torch.no_grad():
            return [o.float().cpu().numpy() for o in _heatmaps_out(self.model(x))]


def _time(step, arg, iters: int, warmup: int, threads: int) -> tuple[float, float]:
    "Seconds per step: wall time, and this process's CPU time divided by the thread count."
    for _ in range(warmup): step(arg)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(iters): step(arg)
    return (time.perf_counter() - t) / iters, (time.process_time() - c) / threads / iters


def bench_model(name: str, modes: list[str], a) -> dict:
    spec = MODELS[name]
    torch.manual_seed(0)
    cfg0 = RunConfig(task=spec["task"], model=name, model_kwargs=spec.get("kwargs", {}), device="cpu", logger="none")
    task0 = get_task(cfg0.task)[1](cfg0)
    base = task0.build_model()
    state = {k: v.clone() for k, v in base.state_dict().items()}
    ours = Ours(name, spec, state, a.engine, a.predictor)
    official = Official(name, spec, state, base, {"optimizer": cfg0.optimizer, "lr": cfg0.lr})
    batch = make_batch(spec, 16 if spec["task"] == "hourglass" else 17)
    steps = {"train": (ours.train_step, official.train_step, batch, batch),
             "infer": (ours.infer_step, official.infer_step, batch["image"], batch["image"])}
    if a.compile and "infer" in modes:
        t = time.perf_counter()
        ours.pred.net = torch.compile(ours.pred.net)
        ours.infer_step(batch["image"])
        print(f"{name}: torch.compile of the predictor's network and its first step took {time.perf_counter() - t:.1f} s",
              flush=True)
    res = {}
    for mode in modes:
        f_ours, f_off, b_off, b_ours = steps[mode]
        times = {"ours": [], "official": []}
        for r in range(a.repeats):
            order = [("ours", f_ours, b_ours), ("official", f_off, b_off)]
            for side, f, b in (order if r % 2 == 0 else order[::-1]):
                times[side].append(_time(f, b, a.iters, a.warmup if r < 2 else 0, a.threads))
        stat = min if a.stat == "best" else statistics.median
        for clock in ([a.clock] + (["cpu"] if a.clock == "wall" and a.show_cpu else [])):
            k = 0 if clock == "wall" else 1
            ips = {side: spec["batch"] / stat([t[k] for t in ts]) for side, ts in times.items()}
            res[mode, clock] = ips
            print(f"{'  (cpu clock) ' if clock != a.clock else ''}{name} {mode}: ours {ips['ours']:.2f} img/s, "
                  f"official-style {ips['official']:.2f} img/s = {ips['ours'] / ips['official']:.2f} x", flush=True)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    p.add_argument("--repeats", type=int, default=3, help="alternating A/B repeats per model and mode")
    p.add_argument("--iters", type=int, default=2, help="timed steps per repeat")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before the first two repeats")
    p.add_argument("--stat", choices=["best", "median"], default="best")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall seconds, or this process's CPU seconds / threads (steadier on a loaded machine)")
    p.add_argument("--show-cpu", action="store_true", help="with the wall clock, also print the cpu-clock rates")
    p.add_argument("--quick", action="store_true", help="1 repeat of 1 step per side: checks that everything runs")
    p.add_argument("--engine", nargs="*", default=[], metavar="NAME=VALUE",
                   help="RunConfig settings of 'ours' other than the defaults, e.g. channels_last=false")
    p.add_argument("--predictor", nargs="*", default=[], metavar="NAME=VALUE",
                   help="Predictor settings of 'ours' other than the defaults, e.g. fuse_bn=false")
    p.add_argument("--compile", action="store_true", help="torch.compile the predictor's network (compile time printed)")
    a = p.parse_args(argv)
    if a.quick: a.repeats, a.iters, a.warmup = 1, 1, 0
    a.engine, a.predictor = _settings(a.engine), _settings(a.predictor)
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {a.repeats} repeats x {a.iters} steps, "
          f"{a.stat} repeat, {a.clock} clock; engine settings {a.engine or 'default'}, predictor settings {a.predictor or 'default'}",
          flush=True)
    for name in a.models: bench_model(name, a.modes, a)


if __name__ == "__main__":
    main()
