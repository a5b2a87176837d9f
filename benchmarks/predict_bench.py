"""Prediction speed, images per second, for each model family on the fixture photos and the synthetic validation
images, on 2 CPU threads: eager (contiguous) against channels_last, timed alternately in one process (medians of the
rounds); optionally torch.compile, tried in a child process and reported only if it compiles within a minute.

Families and settings (the training recipes' models at their recipe input sizes, untrained weights: speed only):
  topdown   pose_resnet_18 (deconv 128), 64x96 crops, whole image as one box, flip test
  hourglass stacked_hourglass, 2 stacks, 256x256, flip test
  depth     hourglass_depth, 2 stacks, 256x256, flip test
  bottomup  higher_hrnet_w32 at 256 (the recipe's 512 is ~4x slower), flip test, one scale

Wall-clock rates suffer from other load; the CPU seconds per image (this process) are the steadier number.

Run: python benchmarks/predict_bench.py [--rounds 3] [--images 4] [--families topdown,hourglass] [--compile]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from poselab.data.formats import read_image
from poselab.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "topdown": dict(model="pose_resnet_18", model_kwargs={"deconv_filters": [128, 128, 128]}, input_size=(64, 96)),
    "hourglass": dict(model="stacked_hourglass", model_kwargs={"num_stacks": 2}, input_size=(256, 256)),
    "depth": dict(model="hourglass_depth", input_size=(256, 256)),
    "bottomup": dict(model="higher_hrnet_w32", input_size=256),
}


def images(n: int) -> dict[str, list[np.ndarray]]:
    "The fixture photos and `n` synthetic validation images (generated into a temporary folder)."
    from poselab.synthetic import build_synthetic
    photos = [read_image(p) for p in sorted((ROOT / "tests/fixtures/photos").glob("*.*")) if p.suffix != ".md"]
    d = Path(tempfile.mkdtemp()) / "synthetic"
    build_synthetic(d, 4, n, seed=0, workers=1, progress=False)
    synth = [read_image(p) for p in sorted((d / "images/val").glob("*.jpg"))[:n]]
    return {"photos": photos, "synthetic val": synth}


def predictor(family: str, channels_last: bool) -> Predictor:
    s = SETTINGS[family]
    torch.manual_seed(0)
    return Predictor(s["model"], model_kwargs=s.get("model_kwargs"), input_size=s["input_size"], channels_last=channels_last)


def rate(p: Predictor, imgs: list[np.ndarray], cpu: bool = False) -> float:
    "Images per second of wall time (or, with `cpu`, per second of this process's CPU time)."
    clock = time.process_time if cpu else time.perf_counter
    t = clock()
    for im in imgs: p.predict(im)
    return len(imgs) / (clock() - t)


def compiled_rate(family: str, set_name: str, n: int, limit: float = 60.0) -> str:
    "torch.compile in a child process: images/s after compiling, or why not."
    code = (f"import sys, time, torch; sys.argv=['x']; torch.set_num_threads(2)\n"
            f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import predict_bench as b\n"
            f"imgs = b.images({n})[{set_name!r}]; p = b.predictor({family!r}, False); p.net = torch.compile(p.net)\n"
            f"t = time.perf_counter(); p.predict(imgs[0]); print('compiled', time.perf_counter() - t, flush=True)\n"
            f"print('rate', b.rate(p, imgs))")
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=limit + 60, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f"did not compile and run within {limit + 60:.0f} s"
    out = dict(l.split(" ", 1) for l in r.stdout.splitlines() if l.startswith(("compiled", "rate")))
    if "rate" not in out: return f"failed: {(r.stderr.strip().splitlines() or ['?'])[-1][:120]}"
    if float(out["compiled"]) > limit: return f"compiled in {float(out['compiled']):.0f} s (> {limit:.0f} s): not used"
    return f"{float(out['rate']):.2f} img/s (compiled in {float(out['compiled']):.0f} s)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=4, help="synthetic validation images")
    ap.add_argument("--families", default="topdown,hourglass,depth,bottomup")
    ap.add_argument("--compile", action="store_true", help="also try torch.compile (topdown only)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    sets = images(a.images)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {a.rounds} alternating rounds")
    for fam in a.families.split(","):
        ps = {"eager": predictor(fam, False), "channels_last": predictor(fam, True)}
        for name, imgs in sets.items():
            for p in ps.values(): p.predict(imgs[0])                 # warm-up
            r = {k: [] for k in ps}
            cpu = {k: [] for k in ps}
            for _ in range(a.rounds):
                for k, p in ps.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    for im in imgs: p.predict(im)
                    r[k].append(len(imgs) / (time.perf_counter() - t0)); cpu[k].append((time.process_time() - c0) / len(imgs))
            e, c = statistics.median(r["eager"]), statistics.median(r["channels_last"])
            ce, cc = statistics.median(cpu["eager"]), statistics.median(cpu["channels_last"])
            print(f"{fam:9s} {name:13s} ({len(imgs)} images): eager {e:6.2f} img/s ({ce:.2f} CPU-s/img), "
                  f"channels_last {c:6.2f} img/s ({cc:.2f} CPU-s/img), CPU-time ratio x{ce / cc:.2f}", flush=True)
        if a.compile and fam == "topdown":
            print(f"{fam:9s} torch.compile (photos): {compiled_rate(fam, 'photos', a.images)}", flush=True)


if __name__ == "__main__":
    main()
