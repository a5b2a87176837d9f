"""PoseIG speed: all 17 joint maps of one 256x192 crop through `pose_resnet_50`, straight-line integrated gradients
from a zero (black) baseline with a left Riemann sum of `--steps` steps.

* ours: `poselab.attribution.pose_ig` -- each batch of path images is forwarded once and the 17 input gradients
  come from 17 backward passes over that one retained graph (`--backward loop`, the default) or from one batched
  vector-Jacobian product (`--backward vmap`, `torch.autograd.grad(..., is_grads_batched=True)`);
* captum: `captum.attr.IntegratedGradients` with `method="riemann_left"`, called once per joint (17 forwards and
  backwards of the whole path).

Both differentiate the same PoseIG likelihood exp(-0.3 |SA_10(h_j) - p_j|); the maps (channel sums) must agree to
1e-5 of the map maximum. Use a power of two for `--steps`: captum builds its alphas i/n in float32 and ours are
i/n in the input's precision; for other n they differ by ~1e-8, and a random ResNet-50 amplifies that to ~1e-3 of the
map (the maps then agree with a per-step loop at the same alphas to 1e-13 in float64, but not with each other). The two are timed alternately in one process; the medians are printed with their ratio:
`poseig: ours X s, captum Y s = R x`.

Run: python benchmarks/attribution_bench.py [--steps 16] [--repeats 2] [--threads 2] [--batch-size 16] [--backward loop]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from poselab.attribution import HeatmapTarget, pose_ig
from poselab.models.core import create_model


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=16, help="a power of two: see above")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16, help="path images per forward (ours)")
    ap.add_argument("--backward", default="loop", choices=("loop", "vmap"), help="pose_ig's backward (ours)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    from captum.attr import IntegratedGradients

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = create_model("pose_resnet_50", num_joints=17).to(a.device)
    with torch.no_grad():
        # a random network with batch-norm statistics of mean 0 / variance 1 blows its activations up layer after
        # layer; estimate the statistics on random crops first (as training would), then widen the random head so
        # that the likelihood varies
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d): m.momentum = None
        model.train()
        for _ in range(2): model(torch.randn(4, 3, 256, 192, device=a.device))
        model.eval()
        model.final_layer.weight.normal_(0, 0.01)
    x = torch.randn(1, 3, 256, 192, device=a.device)
    gt = torch.rand(1, 17, 2, device=a.device) * torch.tensor([47.0, 63.0], device=a.device)
    target = HeatmapTarget(gt="point")
    info = {"joints": gt}

    def ours():
        return pose_ig(model, x, target, info, steps=a.steps, path="zero", rule="left", batch_size=a.batch_size,
                       backward=a.backward)

    ig = IntegratedGradients(lambda z: target(model, z, {"joints": gt.expand(len(z), -1, -1)}))

    def theirs():
        maps = [ig.attribute(x, baselines=torch.zeros_like(x), target=j, n_steps=a.steps, method="riemann_left",
                             internal_batch_size=a.steps).sum(1) for j in range(17)]
        return torch.stack(maps, 1)

    t_ours, t_theirs = [], []
    for r in range(a.repeats):
        for name in (("ours", "captum") if r % 2 == 0 else ("captum", "ours")):
            t = time.perf_counter()
            m = ours() if name == "ours" else theirs()
            (t_ours if name == "ours" else t_theirs).append(time.perf_counter() - t)
            if name == "ours": m_ours = m
            else: m_theirs = m
        err = ((m_ours - m_theirs).abs().amax((-2, -1)) / m_theirs.abs().amax((-2, -1))).max().item()
        print(f"repeat {r}: ours {t_ours[-1]:.1f} s, captum {t_theirs[-1]:.1f} s, max map difference {err:.2e} "
              "of the map maximum", flush=True)
        if not err <= 1e-5:
            raise AssertionError(f"maps differ: max error {err:.2e} of the map maximum (needs <= 1e-5)")
    o, c = statistics.median(t_ours), statistics.median(t_theirs)
    print(f"maps agree: max error {err:.2e} of the map maximum; runs ours {['%.1f' % t for t in t_ours]}, "
          f"captum {['%.1f' % t for t in t_theirs]}")
    print(f"poseig: ours {o:.1f} s, captum {c:.1f} s = {c / o:.2f} x")
    return c / o


if __name__ == "__main__":
    main()
