"""Decode a batch of 64x17x64x48 heatmaps: `poselab.codecs.get_final_preds` (array indexing over all N x K
joints, batched back-projection) against a straightforward per-joint loop of the reference HRNet routine
(argmax, quarter-pixel shift one joint at a time, back-projection one sample at a time); and the same for
DARK refinement (`post_process='dark'`) against a per-map OpenCV blur + per-joint Newton step loop.

Run: python benchmarks/decode_bench.py [--repeats 20]
The two are timed alternately in one process; medians are printed with their ratio.
"""
from __future__ import annotations

import argparse
import math
import time

import cv2
import numpy as np

from poselab.codecs import get_final_preds
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


def loop_dark_preds(hm: np.ndarray, center: np.ndarray, scale: np.ndarray, kernel: int = 11):
    "Per-map / per-joint loop version of DARK decoding (same results as `get_final_preds(..., 'dark')`)."
    N, K, H, W = hm.shape
    flat = hm.reshape(N, K, -1)
    idx = np.argmax(flat, 2)
    maxvals = np.amax(flat, 2)[..., None]
    coords = np.stack([idx % W, idx // W], -1).astype(np.float32) * (maxvals > 0)
    hm = hm.copy()
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
    preds = coords.copy()
    for i in range(N):
        preds[i] = transform_preds(coords[i], center[i], scale[i], [W, H])
    return preds, maxvals


def _time_pair(f_ours, f_loop, repeats):
    t_ours, t_loop = [], []
    for _ in range(repeats):
        t0 = time.perf_counter(); f_ours(); t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); f_loop(); t_loop.append(time.perf_counter() - t0)
    return np.median(t_ours) * 1e3, np.median(t_loop) * 1e3


def main(repeats: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    # network-like heatmaps: one Gaussian (sigma 2) per joint at a sub-pixel position, plus noise
    mu = rng.uniform(2, 46, (64, 17, 2))
    yy, xx = np.mgrid[:64, :48]
    hm = np.exp(-((xx - mu[..., :1, None]) ** 2 + (yy - mu[..., 1:, None]) ** 2) / 8.0)
    hm = (hm + rng.normal(scale=0.02, size=hm.shape)).astype(np.float32)
    center = rng.uniform(100, 500, (64, 2))
    scale = rng.uniform(0.5, 2.5, (64, 2))
    ours, _ = get_final_preds(hm, center, scale)
    ref, _ = loop_final_preds(hm, center, scale)
    assert np.allclose(ours, ref, atol=1e-3), "quarter-shift decoders disagree"
    ours_d, _ = get_final_preds(hm, center, scale, post_process="dark")
    ref_d, _ = loop_dark_preds(hm, center, scale)
    assert np.allclose(ours_d, ref_d, atol=1e-2), "DARK decoders disagree"
    print(f"batch 64x17x64x48, {repeats} alternating runs, median wall time")
    mo, ml = _time_pair(lambda: get_final_preds(hm, center, scale), lambda: loop_final_preds(hm, center, scale), repeats)
    print(f"  quarter shift  poselab.codecs.get_final_preds : {mo:8.2f} ms")
    print(f"                 per-joint loop (reference)     : {ml:8.2f} ms   ({ml / mo:.1f}x)")
    r = max(3, repeats // 4)
    mo, ml = _time_pair(lambda: get_final_preds(hm, center, scale, post_process="dark"),
                        lambda: loop_dark_preds(hm, center, scale), r)
    print(f"  DARK           poselab.codecs.get_final_preds : {mo:8.2f} ms   ({r} runs)")
    print(f"                 per-map/per-joint loop         : {ml:8.2f} ms   ({ml / mo:.1f}x)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    main(ap.parse_args().repeats)
