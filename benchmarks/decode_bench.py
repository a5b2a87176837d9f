"""Decode a batch of 64x17x64x48 heatmaps: `poselab.codecs.get_final_preds` (array indexing over all N x K
joints, batched back-projection) against a straightforward per-joint loop of the reference HRNet routine
(argmax, quarter-pixel shift one joint at a time, back-projection one sample at a time); and the same for
DARK refinement (`post_process='dark'`, batch 32x17x64x48) against the authors' procedure written as a loop
(OpenCV blur of each zero-padded map, one Newton step per joint with a 2x2 matrix inverse).

Before timing, the vectorised DARK refinement is checked against the loop to 1e-6 heatmap pixels on noisy
Gaussian heatmaps (peaks on and near the border), uniform and Gaussian noise, single-pixel peaks at each border
distance, faint maps under the 1e-10 floor and constant maps.

Run: python benchmarks/decode_bench.py [--repeats 20] [--threads 2]
The two are timed alternately in one process; quarter shift: medians; DARK: best of the alternating runs
(the machine is shared), with their ratio.
"""
from __future__ import annotations

import argparse
import math
import time

import cv2
import numpy as np
import torch

from poselab.codecs import dark_refine, get_final_preds, get_max_preds
from poselab.geometry import transform_preds


def loop_final_preds(hm: np.ndarray, center: np.ndarray, scale: np.ndarray):
    "Per-joint-loop version of the reference decoder (same results as `get_final_preds`)."
    N, K, H, W = hm.shape
    flat = hm.reshape(N, K, -1)
    idx = np.argmax(flat, 2).reshape(N, K, 1)
    maxvals = np.amax(flat, 2).reshape(N, K, 1)
    coords = np.tile(idx, (1, 1, 2)).astype(np.float32)
    coords[:, :, 0] = coords[:, :, 0] % W
    coords[:, :, 1] = np.floor(coords[:, :, 1] / W)
    coords *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    for n in range(N):
        for p in range(K):
            m = hm[n][p]
            px = int(math.floor(coords[n][p][0] + 0.5))
            py = int(math.floor(coords[n][p][1] + 0.5))
            if 1 < px < W - 1 and 1 < py < H - 1:
                diff = np.array([m[py][px + 1] - m[py][px - 1], m[py + 1][px] - m[py - 1][px]])
                coords[n][p] += np.sign(diff) * .25
    preds = coords.copy()
    for i in range(N):
        preds[i] = transform_preds(coords[i], center[i], scale[i], [W, H])
    return preds, maxvals


def loop_dark_refine(hm: np.ndarray, coords: np.ndarray, kernel: int = 11) -> np.ndarray:
    "The authors' DARK refinement one map and one joint at a time, in float64 (refined heatmap coordinates)."
    hm = np.array(hm, np.float64)
    coords = np.array(coords, np.float64)
    N, K, H, W = hm.shape
    border = (kernel - 1) // 2
    for i in range(N):
        for j in range(K):
            peak = np.max(hm[i, j])
            dr = np.zeros((H + 2 * border, W + 2 * border))
            dr[border:-border, border:-border] = hm[i, j]
            dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
            hm[i, j] = dr[border:-border, border:-border]
            hm[i, j] *= peak / np.max(hm[i, j])
    hm = np.log(np.maximum(hm, 1e-10))
    for n in range(N):
        for p in range(K):
            m, px, py = hm[n][p], int(coords[n, p, 0]), int(coords[n, p, 1])
            if 1 < px < W - 2 and 1 < py < H - 2:
                dx = 0.5 * (m[py][px + 1] - m[py][px - 1])
                dy = 0.5 * (m[py + 1][px] - m[py - 1][px])
                dxx = 0.25 * (m[py][px + 2] - 2 * m[py][px] + m[py][px - 2])
                dxy = 0.25 * (m[py + 1][px + 1] - m[py - 1][px + 1] - m[py + 1][px - 1] + m[py - 1][px - 1])
                dyy = 0.25 * (m[py + 2][px] - 2 * m[py][px] + m[py - 2][px])
                if dxx * dyy - dxy ** 2 != 0:
                    coords[n, p] += -np.linalg.inv(np.array([[dxx, dxy], [dxy, dyy]])) @ np.array([dx, dy])
    return coords


def loop_dark_preds(hm: np.ndarray, center: np.ndarray, scale: np.ndarray, kernel: int = 11):
    "Per-map / per-joint loop version of DARK decoding (same results as `get_final_preds(..., 'dark')`)."
    N, K, H, W = hm.shape
    flat = hm.reshape(N, K, -1)
    idx = np.argmax(flat, 2)
    maxvals = np.amax(flat, 2)[..., None]
    coords = np.stack([idx % W, idx // W], -1).astype(np.float32) * (maxvals > 0)
    coords = loop_dark_refine(hm, coords, kernel).astype(np.float32)
    preds = coords.copy()
    for i in range(N):
        preds[i] = transform_preds(coords[i], center[i], scale[i], [W, H])
    return preds, maxvals


def gaussian_heatmaps(rng, n: int, k: int = 17, h: int = 64, w: int = 48, low: float = 2, noise: float = 0.02):
    "Network-like heatmaps: one Gaussian (sigma 2) per joint at a sub-pixel position, plus noise."
    mu = rng.uniform(low, [w - low, h - low], (n, k, 2))
    yy, xx = np.mgrid[:h, :w]
    hm = np.exp(-((xx - mu[..., :1, None]) ** 2 + (yy - mu[..., 1:, None]) ** 2) / 8.0)
    return (hm + rng.normal(scale=noise, size=hm.shape)).astype(np.float32)


def dark_cases(rng) -> dict:
    "Heatmap sets for the DARK equality check."
    sharp = [(0, 30), (1, 30), (2, 30), (45, 30), (46, 30), (47, 30), (20, 0), (20, 1), (20, 2), (20, 61), (20, 62), (20, 63)]
    single = np.zeros((1, len(sharp), 64, 48), np.float32)
    for i, (x, y) in enumerate(sharp):
        single[0, i, y, x] = 1
        single[0, i, y + (1 if y < 32 else -1), x + (1 if x < 24 else -1)] = 0.5
    return {"gaussian": gaussian_heatmaps(rng, 32), "border": gaussian_heatmaps(rng, 8, low=-1),
            "faint": 1.1e-10 * gaussian_heatmaps(rng, 4, noise=0),
            "uniform": rng.uniform(size=(8, 17, 64, 48)).astype(np.float32),
            "normal": rng.normal(size=(8, 17, 64, 48)).astype(np.float32), "single": single,
            "flat": np.stack([np.full((64, 48), v, np.float32) for v in (0.0, 0.5, -1.0)])[None]}


def _time_pair(f_ours, f_loop, repeats, stat=np.median):
    t_ours, t_loop = [], []
    for _ in range(repeats):
        t0 = time.perf_counter(); f_ours(); t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); f_loop(); t_loop.append(time.perf_counter() - t0)
    return stat(t_ours) * 1e3, stat(t_loop) * 1e3


def main(repeats: int = 20, seed: int = 0, threads: int = 2):
    cv2.setNumThreads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    hm = gaussian_heatmaps(rng, 64)
    center = rng.uniform(100, 500, (64, 2))
    scale = rng.uniform(0.5, 2.5, (64, 2))
    ours, _ = get_final_preds(hm, center, scale)
    ref, _ = loop_final_preds(hm, center, scale)
    assert np.allclose(ours, ref, atol=1e-3), "quarter-shift decoders disagree"
    print(f"batch 64x17x64x48, {repeats} alternating runs, median wall time, {threads} threads")
    mo, ml = _time_pair(lambda: get_final_preds(hm, center, scale), lambda: loop_final_preds(hm, center, scale), repeats)
    print(f"  quarter shift  poselab.codecs.get_final_preds : {mo:8.2f} ms")
    print(f"                 per-joint loop (reference)     : {ml:8.2f} ms   ({ml / mo:.1f}x)")

    worst = {}
    with np.errstate(invalid="ignore"):                    # the loop divides 0 by 0 on the all-zero map
        for name, h in dark_cases(rng).items():
            raw = get_max_preds(h)[0].astype(np.float64)
            worst[name] = max(float(np.abs(dark_refine(h, raw, k) - loop_dark_refine(h, raw, k)).max()) for k in (11, 5))
    assert max(worst.values()) <= 1e-6, f"DARK refinements disagree: {worst}"
    hm, center, scale = hm[:32], center[:32], scale[:32]
    ours_d, _ = get_final_preds(hm, center, scale, post_process="dark")
    ref_d, _ = loop_dark_preds(hm, center, scale)
    assert np.allclose(ours_d, ref_d, atol=1e-3), "DARK decoders disagree"
    r = max(5, repeats // 2)
    mo, ml = _time_pair(lambda: get_final_preds(hm, center, scale, post_process="dark"),
                        lambda: loop_dark_preds(hm, center, scale), r, np.min)
    print(f"batch 32x17x64x48, {r} alternating runs, best wall time, {threads} threads")
    print(f"  DARK           poselab.codecs.get_final_preds : {mo:8.2f} ms")
    print(f"                 per-map/per-joint loop         : {ml:8.2f} ms   ({ml / mo:.1f}x)")
    for name, noise in (("uniform", rng.uniform(size=hm.shape)), ("Gaussian", rng.normal(size=hm.shape))):
        noise = noise.astype(np.float32)   # many joints take the authors' full-map route here (floor, ill-conditioned steps)
        mo, ml = _time_pair(lambda: get_final_preds(noise, center, scale, post_process="dark"),
                            lambda: loop_dark_preds(noise, center, scale), r, np.min)
        print(f"  DARK on {name + '-noise maps':<20}: {mo:8.2f} ms vs loop {ml:.2f} ms   ({ml / mo:.1f}x)")
    print("  largest |vectorised - loop| refinement, kernels 11 and 5 (px): "
          + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2, help="OpenCV and torch threads")
    args = ap.parse_args()
    main(args.repeats, threads=args.threads)
