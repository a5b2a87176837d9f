"""The critic of a gan3d run as the lifter's adversarial pose prior: unseen-elevation MPJPE with and without it.

Trains the default gan3d run on the embedded mocap clips, then the lifter (`task="lift3d"`, `dataset="mocap"`:
cameras at elevations -10..10 degrees for training, evaluated on -10..10, 20..40 and 40..60) with orthogonal
augmentation off/on and the prior's weight 0 / 0.01 / 0.1, and prints the MPJPE (mm) per elevation band.

    python benchmarks/lift_prior.py --out /tmp/lift_prior
"""
import argparse
import json
import time
from pathlib import Path

import torch

from poselab.train import RunConfig, train


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/lift_prior", help="folder for the runs and prior.json")
    ap.add_argument("--data-root", default="data", help="where the mocap clips are materialised")
    ap.add_argument("--epochs", type=int, default=3, help="lifter epochs per run")
    ap.add_argument("--linear-size", type=int, default=256, help="lifter width")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.01, 0.1], help="prior weights to try")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    gan = RunConfig(task="gan3d", dataset="mocap", data_root=a.data_root, output_dir=str(out), run_name="gan",
                    logger="none", progress=False, val_every=20, overwrite=True)
    train(gan)
    print(f"gan3d: {time.perf_counter() - t:.0f} s wall", flush=True)
    res = {}
    for aug in (False, True):
        for w in a.weights:
            c = RunConfig(task="lift3d", dataset="mocap", data_root=a.data_root, output_dir=str(out),
                          run_name=f"lift_aug{int(aug)}_w{w}", epochs=a.epochs, model_kwargs={"linear_size": a.linear_size},
                          logger="none", progress=False, overwrite=True,
                          options={"augment": aug, "mocap_views": 2, "prior_run": str(out / "gan") if w else None,
                                   "prior_weight": w})
            train(c)
            r = json.loads((c.run_dir / "lifting_eval.json").read_text())["per_label"]["mpjpe"]
            res[f"augment={aug} prior_weight={w}"] = r
            print(f"augment={aug} prior_weight={w}:", {k: round(v, 1) for k, v in r.items()}, flush=True)
    (out / "prior.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
