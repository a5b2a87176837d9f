"""Accuracy against CPU time of the main job's recipe and of the previous one, trained side by side.

    python benchmarks/main_job_curve.py [--steps 2500] [--evals 500,1000,2500] [--limit-val 500] [--threads 1]
                                        [--configs default,previous] [--set previous:lr=4e-3 ...]

Each configuration is trained with the engine's own task (datasets, model, loss, optimiser and schedule over
`--steps` optimiser steps, in-process data loading so that the data pipeline is counted too), one optimiser step
of each configuration in turn, so a busy machine slows them alike. Progress is counted in optimiser steps and in
CPU time of this process (`time.process_time`, training only; evaluation is not counted). With `--threads 1` one
CPU-minute is one minute of one core; on an idle 2-core machine the engine (two threads) trains at about 1.5 such
CPU-minutes per wall minute. At every step of `--evals` each model is scored on the synthetic validation people
(ground-truth boxes): COCO AP, AP50 and PCK@0.1 (labelled joints within 0.1 x the longer box side), with and
without flip test, the median joint error (fraction of the longer box side) and the share of left/right joint pairs
predicted on top of each other (`collapse`: predictions closer than 0.3 x their true distance), PCK@0.1 when a joint
may match its own or its left/right partner's ground truth (`either`: what a perfect left/right assignment would give
at most), and the left/right heatmap distance `L/R TV` (model / targets: the mean total-variation distance between the
left and the right heatmap of each pair; 0 means the model draws both sides alike). Needs the synthetic
world (`python -m poselab.synthetic`, or any training run).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from poselab.skeletons import get_skeleton
from poselab.train import TASKS, RunConfig, ResumableBatchSampler, SeededDataset, _collate, get_task

# the top-down recipe before the current one: SimpleBaseline-R18 with three 128-filter deconvolutions (stride-4
# heatmaps, 16x24), DARK codec, Adam 2e-3, cosine; the current one adds a fourth, 64-filter deconvolution (stride 2)
PREVIOUS = dict(model="pose_resnet_18", model_kwargs={"deconv_filters": [128, 128, 128]}, input_size=(64, 96),
                sigma=2.0, codec="dark", augment={"rotation_factor": 15, "scale_factor": 0.25, "half_body_prob": 0.0},
                batch_size=16, optimizer="adam", lr=2e-3, weight_decay=0.0, lr_schedule="cosine")
CONFIGS = {"default": {}, "previous": PREVIOUS}


def scores(task, model, val, flip: bool) -> dict:
    "AP, AP50, PCK@0.1, median error and left/right collapse of `model` on `val` (ground-truth boxes)."
    task.cfg.flip_test = flip
    m, extra = task.evaluate(model, val, torch.device("cpu"))
    kps, idx = extra["keypoints"], np.asarray(extra["meta"]["index"])
    gt, vis = val.joints[idx], val.joints_vis[idx] > 0
    side = np.array([max(val.records[i].bbox[2:4]) for i in idx])
    err = np.linalg.norm(kps[..., :2] - gt, axis=-1) / side[:, None]
    P = np.asarray(get_skeleton(task.skeleton).flip_pairs)
    d_gt = np.linalg.norm(gt[:, P[:, 0]] - gt[:, P[:, 1]], axis=-1) / side[:, None]
    d_pr = np.linalg.norm(kps[:, P[:, 0], :2] - kps[:, P[:, 1], :2], axis=-1) / side[:, None]
    apart = vis[:, P[:, 0]] & vis[:, P[:, 1]] & (d_gt > 0.08)
    partner = get_skeleton(task.skeleton).flip_index                 # each joint's left/right partner (itself if none)
    err_either = np.minimum(err, np.linalg.norm(kps[..., :2] - gt[:, partner], axis=-1) / side[:, None])
    return {"AP": m["AP"], "AP50": m["AP50"], "PCK@0.1": m.get("PCK@0.1", float((err[vis] <= 0.1).mean())),
            "median_err": float(np.median(err[vis])), "collapse": float((d_pr < 0.3 * d_gt)[apart].mean()),
            "PCK_either": float((err_either[vis] <= 0.1).mean())}


def left_right_distance(model, val, pairs, n: int = 64) -> tuple[float, float]:
    """Mean total-variation distance between the left and the right heatmap of each flip pair on `n` validation crops
    (heatmaps clipped at 0 and normalised to sum 1): 0 when the model draws both sides alike, 1 when they are disjoint;
    and the same for the training targets, i.e. what a model that tells left from right would reach."""
    P = np.asarray(pairs)
    items = [val[i] for i in range(min(n, len(val)))]
    x, t = torch.stack([s["image"] for s in items]), torch.stack([s["target"] for s in items])
    model.eval()
    with torch.inference_mode(): hm = model(x)
    hm = (hm[-1] if isinstance(hm, (list, tuple)) else hm).float()

    def tv(h):
        h = h.clamp(min=0); h = h / h.flatten(2).sum(-1).clamp(min=1e-8)[..., None, None]
        return float(((h[:, P[:, 0]] - h[:, P[:, 1]]).abs().flatten(2).sum(-1) / 2).mean())
    return tv(hm), tv(t)


class Trainer:
    "One configuration trained step by step with the engine's task, timing its CPU use."
    def __init__(self, name: str, settings: dict, steps: int, limit_val: int, seed: int = 0):
        base = dict(workers=0, logger="none", progress=False, log_images=False, limit_val=limit_val, seed=seed,
                    output_dir="outputs/main_job_curve", run_name=name)
        self.name, self.cfg = name, RunConfig.from_dict({**base, **settings})
        self.task = get_task(self.cfg.task)[1](self.cfg)
        self.train_ds, self.val_ds = self.task.datasets()
        torch.manual_seed(seed)
        self.model = self.task.build_model()
        if self.cfg.channels_last: self.model = self.model.to(memory_format=torch.channels_last)
        self.opt, self.sched = self.task.build_optimizer(self.model, steps)
        self.step, self.epoch, self.cpu_s = 0, 0, 0.0
        self._epoch_iter()

    def _epoch_iter(self):
        s = ResumableBatchSampler(len(self.train_ds), self.cfg.batch_size, self.epoch, self.cfg.seed)
        self.batches = iter(DataLoader(SeededDataset(self.train_ds), batch_sampler=s, num_workers=0, collate_fn=_collate))

    def advance(self) -> float:
        t = time.process_time()
        batch = next(self.batches, None)
        if batch is None:
            self.epoch += 1; self._epoch_iter(); batch = next(self.batches)
        self.model.train()
        if self.cfg.channels_last: batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        self.task.step, self.task.epoch = self.step, self.epoch
        loss = self.task.loss(self.model, batch, "cpu")
        self.opt.zero_grad(set_to_none=True); loss.backward(); self.opt.step(); self.sched.step()
        self.step += 1; self.cpu_s += time.process_time() - t
        return loss.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2500, help="optimiser steps of every configuration (its schedule length)")
    ap.add_argument("--evals", default="500,1000,1500,2000,2500", help="steps at which to evaluate")
    ap.add_argument("--limit-val", type=int, default=500, help="validation people scored (all: 1255)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--configs", default="default,previous")
    ap.add_argument("--set", action="append", default=[], metavar="CONFIG:KEY=VALUE",
                    help="override one setting of one configuration (a YAML value)")
    ap.add_argument("--json", help="also write the rows to this json file")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    settings = {n: dict(CONFIGS.get(n, {})) for n in a.configs.split(",")}
    for s in a.set:
        name, kv = s.split(":", 1); k, v = kv.split("=", 1)
        settings.setdefault(name, {})[k] = yaml.safe_load(v)
    evals = sorted({int(s) for s in a.evals.split(",") if int(s) <= a.steps} | {a.steps})
    runs = [Trainer(n, s, a.steps, a.limit_val) for n, s in settings.items()]
    print(f"default recipe: {json.dumps({k: v for k, v in TASKS['topdown'].items() if k not in ('datasets', 'metric')}, default=str)}")
    print(f"{'config':10s} {'step':>5s} {'CPU-min':>7s} | flip: {'AP':>6s} {'AP50':>6s} {'PCK@0.1':>7s} {'med err':>7s} "
          f"{'collapse':>8s} {'either':>6s} {'L/R TV':>10s} | no flip: {'AP':>6s} {'AP50':>6s} {'PCK@0.1':>7s}", flush=True)
    rows = []
    while runs[0].step < a.steps:
        for r in runs: r.advance()
        if runs[0].step in evals:
            for r in runs:
                f, nf = scores(r.task, r.model, r.val_ds, True), scores(r.task, r.model, r.val_ds, False)
                lr_model, lr_target = left_right_distance(r.model, r.val_ds, get_skeleton(r.task.skeleton).flip_pairs)
                rows.append({"config": r.name, "step": r.step, "cpu_min": r.cpu_s / 60, "flip": f, "no_flip": nf,
                             "lr_distance": lr_model, "lr_distance_targets": lr_target})
                print(f"{r.name:10s} {r.step:5d} {r.cpu_s / 60:7.2f} | flip: {f['AP']:6.3f} {f['AP50']:6.3f} "
                      f"{f['PCK@0.1']:7.3f} {f['median_err']:7.3f} {f['collapse']:8.2f} {f['PCK_either']:6.3f} "
                      f"{lr_model:5.2f}/{lr_target:4.2f} | no flip: {nf['AP']:6.3f} {nf['AP50']:6.3f} {nf['PCK@0.1']:7.3f}",
                      flush=True)
    if a.json:
        with open(a.json, "w") as fh: json.dump({"settings": settings, "rows": rows}, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
