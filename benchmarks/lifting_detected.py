"""Lifter trained on ground-truth 2D vs on detected 2D, both evaluated on detected 2D (Martinez et al., ICCV 2017).

    python benchmarks/lifting_detected.py [--train-images 300] [--val-images 100] [--hg-epochs 2] [--epochs 20]
                                          [--linear-size 1024] [--threads 2] [--out DIR]

On the synthetic world: a small stacked hourglass (`task="hourglass"`, 2 stacks of 32 features, 64x64 input) is
trained on the MPII split, `poselab.lifting.write_detections` writes its joints for every person of the H36M
training and validation splits, and two `lift3d` runs with the recipe (1024 units, batch 64, Adam 1e-3, cosine,
gradient norm clipped at 1, no augmentation) read ground-truth 2D or the detections (`train_detections`) for
training; both read the detections for validation (`detections`). Prints a MPJPE / P-MPJPE table (mm) and
writes it as `lifting_detected.json` in the output folder.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from poselab.data.formats import read_h36m
from poselab.lifting import write_detections
from poselab.metrics import atomic_write
from poselab.train import RunConfig, train


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-images", type=int, default=300)
    ap.add_argument("--val-images", type=int, default=100)
    ap.add_argument("--hg-epochs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20, help="lifter epochs")
    ap.add_argument("--linear-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = None if a.out else tempfile.TemporaryDirectory()
    out = Path(a.out or tmp.name)
    world = dict(data_root=str(out), synthetic_train=a.train_images, synthetic_val=a.val_images, output_dir=str(out),
                 logger="none", progress=False)
    t0 = time.perf_counter()
    hg = RunConfig(task="hourglass", run_name="hourglass", input_size=64, epochs=a.hg_epochs, batch_size=16, workers=0,
                   flip_test=False, model_kwargs={"num_stacks": 2, "num_feats": 32}, **world)
    hg_res = train(hg)
    syn = out / "synthetic"
    recs = {s: read_h36m(syn / f"h36m/{s}.npz", image_root=syn) for s in ("train", "val")}
    dets = {s: write_detections(hg.run_dir, recs[s], out / f"predictions_{s}.json") for s in recs}
    table = {"hourglass": {k: hg_res["final"][k] for k in hg_res["final"] if "PCK" in k},
             "people": {s: len(r) for s, r in recs.items()}}
    for name, opts in (("ground-truth 2D", {}), ("detected 2D", {"train_detections": str(dets["train"])})):
        c = RunConfig(task="lift3d", run_name=f"lift_{'detected' if opts else 'gt'}", epochs=a.epochs, val_every=a.epochs,
                      model_kwargs={"linear_size": a.linear_size}, options={"detections": str(dets["val"]), **opts}, **world)
        r = train(c)
        table[name] = {k: r["final"][k] for k in ("mpjpe", "p_mpjpe", "n_mpjpe")} | {"steps": r["steps"]}
    table["minutes"] = (time.perf_counter() - t0) / 60
    atomic_write(out / "lifting_detected.json", json.dumps(table, indent=1))
    print(f"hourglass {table['hourglass']}; people: {table['people']}")
    print(f"{'trained on':<18}{'MPJPE (mm)':>12}{'P-MPJPE (mm)':>14}   (evaluated on detected 2D of the validation split)")
    for k in ("ground-truth 2D", "detected 2D"):
        print(f"{k:<18}{table[k]['mpjpe']:>12.1f}{table[k]['p_mpjpe']:>14.1f}")
    print(f"({a.train_images} / {a.val_images} images, hourglass {a.hg_epochs} epochs, lifter {a.linear_size} units "
          f"x {a.epochs} epochs = {table['detected 2D']['steps']} steps, {table['minutes']:.1f} min)")


if __name__ == "__main__":
    main()
