"""Bottom-up grouping: `poselab.grouping.group_keypoints` against a plain re-implementation of the
associative-embedding parser of HigherHRNet (``lib/core/group.py``), written here in its structure:
a 5x5 max-pool NMS on an NCHW tensor, a per-joint Python matching loop, per-person adjust and refine loops.

Run:  python benchmarks/grouping_bench.py [--images 30] [--people 5] [--size 128]

Prints ms/image for both on one core, the speed-up and whether the grouped people are identical.
The module also provides `ReferenceHeatmapParser` and `make_case`, used by the tests in nbs/14_grouping.ipynb.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

# 0-based order in which the joints are matched (nose, eyes, ears, shoulders, hips, elbows, wrists, knees, ankles)
JOINT_ORDER = [i - 1 for i in (1, 2, 3, 4, 5, 6, 7, 12, 13, 8, 9, 10, 11, 14, 15, 16, 17)]


def _assignment(cost: np.ndarray, solver: str = "scipy") -> np.ndarray:
    "Row/column pairs of a minimum-cost assignment (rows <= columns)."
    if solver == "munkres":
        from munkres import Munkres  # optional; its current release is not the one the official results used
        return np.array(Munkres().compute(cost.tolist()), dtype=np.int64).reshape(-1, 2)
    rows, cols = linear_sum_assignment(cost)
    return np.stack([rows, cols], 1)


class ReferenceHeatmapParser:
    "Straightforward associative-embedding parser, test settings of HigherHRNet w32_512 by default."

    def __init__(self, num_joints=17, max_num_people=30, detection_threshold=0.1, tag_threshold=1.0,
                 use_detection_val=True, ignore_too_much=False, nms_kernel=5, joint_order=None,
                 solver="scipy"):
        self.num_joints, self.max_num_people = num_joints, max_num_people
        self.detection_threshold, self.tag_threshold = detection_threshold, tag_threshold
        self.use_detection_val, self.ignore_too_much = use_detection_val, ignore_too_much
        self.joint_order = list(joint_order) if joint_order is not None else (
            JOINT_ORDER if num_joints == 17 else list(range(num_joints)))
        self.pool = torch.nn.MaxPool2d(nms_kernel, 1, (nms_kernel - 1) // 2)
        self.solver = solver

    def nms(self, det):
        keep = torch.eq(self.pool(det), det).float()
        return det * keep

    def top_k(self, det, tag):
        det = self.nms(det)
        n, k, h, w = det.shape
        val, ind = det.view(n, k, -1).topk(self.max_num_people, dim=2)
        tag = tag.reshape(tag.size(0), tag.size(1), h * w, -1)
        tag_k = torch.stack([torch.gather(tag[:, :, :, i], 2, ind) for i in range(tag.size(3))], dim=3)
        loc = torch.stack((ind % w, (ind / w).long()), dim=3)
        return tag_k.numpy(), loc.numpy(), val.numpy()

    def match_one(self, tag_k, loc_k, val_k):
        empty = np.zeros((self.num_joints, 3 + tag_k.shape[2]))
        people, person_tags = {}, {}
        for step, j in enumerate(self.joint_order):
            cand = np.concatenate((loc_k[j], val_k[j, :, None], tag_k[j]), 1)
            sel = cand[:, 2] > self.detection_threshold
            tags, cand = tag_k[j][sel], cand[sel]
            if cand.shape[0] == 0:
                continue
            if step == 0 or len(people) == 0:
                for t, c in zip(tags, cand):
                    people.setdefault(t[0], np.copy(empty))[j] = c
                    person_tags[t[0]] = [t]
                continue
            keys = list(people.keys())[:self.max_num_people]
            means = [np.mean(person_tags[key], axis=0) for key in keys]
            if self.ignore_too_much and len(keys) == self.max_num_people:
                continue
            dist = np.linalg.norm(cand[:, None, 3:] - np.array(means)[None, :, :], ord=2, axis=2)
            cost = np.copy(dist)
            if self.use_detection_val:
                cost = np.round(cost) * 100 - cand[:, 2:3]
            n_new, n_old = dist.shape
            if n_new > n_old:
                cost = np.concatenate((cost, np.zeros((n_new, n_new - n_old)) + 1e10), axis=1)
            for r, c in _assignment(cost, self.solver):
                if r < n_new and c < n_old and dist[r][c] < self.tag_threshold:
                    people[keys[c]][j] = cand[r]
                    person_tags[keys[c]].append(tags[r])
                else:
                    people.setdefault(tags[r][0], np.copy(empty))[j] = cand[r]
                    person_tags[tags[r][0]] = [tags[r]]
        return np.array([people[key] for key in people]).astype(np.float32)

    def adjust(self, ans, det):
        for b, people in enumerate(ans):
            for p, person in enumerate(people):
                for j, joint in enumerate(person):
                    if joint[2] > 0:
                        x, y = joint[0:2]
                        col, row = int(x), int(y)
                        hm = det[b][j]
                        x = x + 0.25 if hm[row, min(col + 1, hm.shape[1] - 1)] > hm[row, max(col - 1, 0)] else x - 0.25
                        y = y + 0.25 if hm[min(row + 1, hm.shape[0] - 1), col] > hm[max(0, row - 1), col] else y - 0.25
                        ans[b][p, j, 0:2] = (x + 0.5, y + 0.5)
        return ans

    def refine(self, det, tag, keypoints):
        if tag.ndim == 3:
            tag = tag[:, :, :, None]
        tags = []
        for j in range(keypoints.shape[0]):
            if keypoints[j, 2] > 0:
                x, y = keypoints[j][:2].astype(np.int32)
                tags.append(tag[j, y, x])
        mean_tag = np.mean(tags, axis=0)
        found = []
        for j in range(keypoints.shape[0]):
            hm = det[j, :, :]
            dist = ((tag[j, :, :] - mean_tag[None, None, :]) ** 2).sum(axis=2) ** 0.5
            y, x = np.unravel_index(np.argmax(hm - np.round(dist)), hm.shape)
            val = hm[y, x]
            fx, fy = x + 0.5, y + 0.5
            fx += 0.25 if hm[y, min(x + 1, hm.shape[1] - 1)] > hm[y, max(x - 1, 0)] else -0.25
            fy += 0.25 if hm[min(y + 1, hm.shape[0] - 1), x] > hm[max(0, y - 1), x] else -0.25
            found.append((fx, fy, val))
        found = np.array(found)
        for j in range(det.shape[0]):
            if found[j, 2] > 0 and keypoints[j, 2] == 0:
                keypoints[j, :2] = found[j, :2]
                keypoints[j, 2] = found[j, 2]
        return keypoints

    def parse(self, det, tag, adjust=True, refine=True):
        "det [1,K,H,W], tag [1,K,H,W] or [1,K,H,W,L] tensors -> ([people [P,K,3+L]], scores list)."
        ans = [self.match_one(*x) for x in zip(*self.top_k(det, tag))]
        if adjust:
            ans = self.adjust(ans, det)
        scores = [p[:, 2].mean() for p in ans[0]]
        if refine:
            people = ans[0]
            for i in range(len(people)):
                people[i] = self.refine(det[0].numpy(), tag[0].numpy(), people[i])
            ans = [people]
        return ans, scores


# A rough front-facing COCO-17 template (x, y) in units of the person's height.
TEMPLATE = np.array([
    (0.00, -0.42), (-0.03, -0.45), (0.03, -0.45), (-0.07, -0.43), (0.07, -0.43),
    (-0.15, -0.30), (0.15, -0.30), (-0.20, -0.10), (0.20, -0.10), (-0.22, 0.08), (0.22, 0.08),
    (-0.10, 0.05), (0.10, 0.05), (-0.10, 0.27), (0.10, 0.27), (-0.10, 0.48), (0.10, 0.48)])


def make_case(seed: int = 0, num_people: int = 5, size: int = 128, tag_dims: int = 1,
              p_missing: float = 0.1, num_spurious: int = 6, exact_peaks: bool = False):
    """Synthetic network output for `num_people` people: Gaussian (sigma 2) heatmaps merged with max,
    low background noise, a few weak spurious peaks, and tag maps holding one value per person around
    its joints (+ noise) over a noisy background. Returns (det [1,17,S,S], tag [1,17,S,S(,L)], joints [P,17,2])."""
    rng = np.random.default_rng(seed)
    K = len(TEMPLATE)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    det = rng.uniform(0, 0.04, (K, size, size)).astype(np.float32)
    tag = rng.normal(0, 0.6, (K, size, size, tag_dims)).astype(np.float32)
    person_tags = rng.permutation(num_people)[:, None] * 1.6 + rng.normal(0, 0.15, (num_people, tag_dims))
    joints = np.zeros((num_people, K, 2), np.float32)
    for p in range(num_people):
        height = rng.uniform(0.35, 0.7) * size
        centre = rng.uniform(0.3 * size, 0.7 * size, 2) + rng.normal(0, 0.12 * size, 2)
        pts = centre + TEMPLATE * height + rng.normal(0, 1.0, (K, 2))
        joints[p] = pts
        for j in range(K):
            if rng.random() < p_missing or not (0 <= pts[j, 0] < size and 0 <= pts[j, 1] < size):
                continue
            peak = 1.0 if exact_peaks else rng.uniform(0.45, 1.0)
            x0, y0 = (np.round(pts[j]) if exact_peaks else pts[j])
            g = peak * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 2.0 ** 2))
            det[j] = np.maximum(det[j], g)
            near = (xx - x0) ** 2 + (yy - y0) ** 2 <= 16
            tag[j][near] = person_tags[p] + rng.normal(0, 0.08, (int(near.sum()), tag_dims))
    for _ in range(num_spurious):
        j, x0, y0 = rng.integers(K), *rng.uniform(0, size, 2)
        det[j] = np.maximum(det[j], rng.uniform(0.12, 0.35) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 8))
    tag_t = torch.from_numpy(tag[None] if tag_dims > 1 else tag[None, ..., 0])
    return torch.from_numpy(det[None]), tag_t, joints


def same_groups(a, b) -> bool:
    "True if two (people, scores) results are identical (same people in the same order, same values)."
    (pa, sa), (pb, sb) = a, b
    pa, pb = np.asarray(pa, np.float32), np.asarray(pb, np.float32)
    if pa.size == 0 or pb.size == 0:
        return pa.size == pb.size and len(sa) == len(sb)
    return pa.shape == pb.shape and np.array_equal(pa, pb) and np.array_equal(np.float32(sa), np.float32(sb))


def main(argv=None):
    from poselab.grouping import group_keypoints
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--people", type=int, default=5)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cases = [make_case(i, args.people, args.size) for i in range(args.images)]
    ref = ReferenceHeatmapParser()

    def run_ref(det, tag):
        ans, scores = ref.parse(det, tag)
        return ans[0], scores

    def run_ours(det, tag):
        return group_keypoints(det, tag)

    identical = all(same_groups(run_ref(d, t), run_ours(d, t)) for d, t, _ in cases)
    # CPU time of this (single-threaded) process: on a shared machine it is far steadier than wall time
    clocks = {"cpu": time.process_time, "wall": time.perf_counter}
    times = {(c, n): [] for c in clocks for n in ("reference", "poselab")}
    for _ in range(args.repeats):  # alternate the two; report the median and the best of each
        for name, fn in (("reference", run_ref), ("poselab", run_ours)):
            t0 = {c: f() for c, f in clocks.items()}
            for d, t, _ in cases:
                fn(d, t)
            for c, f in clocks.items():
                times[c, name].append((f() - t0[c]) / len(cases) * 1e3)
    med = {k: float(np.median(v)) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    npeople = np.mean([len(run_ours(d, t)[0]) for d, t, _ in cases])
    print(f"{args.images} images {args.size}x{args.size}, 17 joints x 30 candidates, {args.people} people "
          f"(+ spurious peaks; {npeople:.1f} groups/image), 1 thread")
    for c in clocks:
        for stat, v in (("median", med), ("best", best)):
            r, o = v[c, "reference"], v[c, "poselab"]
            print(f"{c:4s} time ({stat:6s} of {args.repeats})  reference parser {r:7.2f} ms/image   "
                  f"poselab {o:6.2f} ms/image   speed-up {r / o:5.1f}x")
    print(f"identical groups : {identical}")


if __name__ == "__main__":
    main()
