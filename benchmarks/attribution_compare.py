"""PoseIG indices of two trained models side by side (the chapter's comparison, with real training).

Trains two SimpleBaseline ResNet-18 models on the synthetic world with the default top-down recipe, one on 64×96 and
one on 96×128 crops, for `--epochs` epochs each, attributes the same validation people with the blur path and prints
the visible-joint means of DI, FI, LI and EPE (one row per model) plus each run's validation AP / PCK@0.1.

    python benchmarks/attribution_compare.py --out /tmp/attribution_compare --epochs 1
"""
import argparse
import json
import time
from pathlib import Path

import torch

from poselab.attribution import index_table, run_attribution
from poselab.train import RunConfig, train


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/attribution_compare", help="folder for the runs, stores and results.json")
    ap.add_argument("--data-root", default="data", help="where the synthetic world lives (built if missing)")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs per model")
    ap.add_argument("--samples", type=int, default=16, help="validation people to attribute")
    ap.add_argument("--steps", type=int, default=16, help="blur-path steps")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    res, val = {}, {}
    for name, size in (("r18_64x96", (64, 96)), ("r18_96x128", (96, 128))):
        t = time.perf_counter()
        r = train(RunConfig(run_name=name, input_size=size, epochs=a.epochs, data_root=a.data_root,
                            output_dir=str(out / "runs"), logger="none", progress=False, overwrite=True))
        val[name] = {k: r["final"].get(k) for k in ("AP", "AP50", "PCK@0.1", "joint_err_pct") if k in r["final"]}
        print(f"{name}: trained in {time.perf_counter() - t:.0f} s, validation {val[name]}", flush=True)
        t = time.perf_counter()
        res[name] = run_attribution(out / "runs" / name, samples=a.samples, steps=a.steps, progress=False,
                                    figures=False, store_dir=out / "stores" / name).summary
        print(f"{name}: attributed in {time.perf_counter() - t:.0f} s", flush=True)
    print(index_table(res))
    (out / "results.json").write_text(json.dumps({"validation": val, "indices": res}, indent=1, default=float))


if __name__ == "__main__":
    main()
