"""Throughput of the synthetic dataset generator (render + JPEG + labels + writers), 1 and 2 workers.

Run from the repository root: `python benchmarks/synthetic_bench.py [--n 200] [--reps 1]`.
The motion library is loaded once beforehand, so only generation is timed. On shared machines,
compare numbers from the same run only.
"""
import argparse
import tempfile
import time

from poselab.data.mocap import motion_library
from poselab.synthetic import build_synthetic


def images_per_second(n: int, workers: int, clips, reps: int) -> float:
    best = float("inf")
    for r in range(reps):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            build_synthetic(d, n_train=n, n_val=0, seed=r, workers=workers, force=True, clips=clips, progress=False)
            best = min(best, time.perf_counter() - t0)
    return n / best


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="images per run")
    ap.add_argument("--reps", type=int, default=1, help="runs per setting (the fastest is reported)")
    a = ap.parse_args()
    clips = motion_library()
    for w in (1, 2):
        print(f"synthetic: {images_per_second(a.n, w, clips, a.reps):.1f} images/s ({w} worker{'s' if w > 1 else ''})")
