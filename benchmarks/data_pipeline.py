"""Training-sample throughput of `poselab.data.pipelines` against a straightforward implementation of the reference
pipelines (HRNet `JointsDataset.__getitem__` for top-down, HigherHRNet's COCO keypoints dataset + transforms for
bottom-up), on one core, over the people / images of the real COCO fixture (tests/fixtures/pipelines/).

Top-down: decode the JPEG, 256x192 crop with the full augmentation (half body, scale, rotation, flip), 17 heatmaps
of 64x48, normalised CHW float tensor. Bottom-up: 512 input, heatmaps at 128 and 256, AE indices, ignore masks.
The reference versions decode the whole image with cv2.imread, convert the whole image to RGB, mirror the whole
image when flipping, normalise in float after the warp and draw each Gaussian on a fresh grid in a per-joint loop.
poselab decodes JPEGs with simplejpeg (libjpeg-turbo) when it is installed, else with OpenCV; the first line of the
output names the decoder in use. Training samples use libjpeg's fast IDCT (TopDownDataset/BottomUpDataset
`fast_decode=None`, about one grey level from OpenCV's pixels); pass --exact-decode to time poselab with the exact IDCT.

Run: python benchmarks/data_pipeline.py [--rounds 9] [--reps 4] [--no-pin] [--exact-decode]
The process is pinned to one CPU core (unless --no-pin) and uses one OpenCV and one torch thread. The two
implementations are timed alternately in one process; the ratio compares them on the same machine state.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from poselab.data import pipelines
from poselab.data.pipelines import BottomUpDataset, TopDownDataset
from poselab.skeletons import get_skeleton

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pipelines"
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
FLIP_PAIRS = get_skeleton("coco").flip_pairs


def coco_people(json_path: Path) -> list[dict]:
    "One dict per annotated person (the reference `_load_coco_keypoint_annotation_kernal` fields)."
    d = json.loads(json_path.read_text())
    images = {im["id"]: im for im in d["images"]}
    out = []
    for a in d["annotations"]:
        im = images[a["image_id"]]
        k = np.array(a["keypoints"], np.float64).reshape(-1, 3)
        out.append(dict(image=im["file_name"], image_id=a["image_id"], width=im["width"], height=im["height"],
                        bbox=a["bbox"], joints=k[:, :2], joints_vis=(k[:, 2] > 0).astype(np.float32),
                        keypoints=k, num_keypoints=a["num_keypoints"], iscrowd=a["iscrowd"],
                        mask_source=a["segmentation"], skeleton="coco"))
    return out


# ---------------------------------------------------------------- reference top-down (HRNet JointsDataset)
def get_dir(src_point, rot_rad):
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return [src_point[0] * cs - src_point[1] * sn, src_point[0] * sn + src_point[1] * cs]


def get_3rd_point(a, b):
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def ref_affine(center, scale, rot, output_size, inv=0):
    "The three-point cv2.getAffineTransform construction of the reference."
    scale_tmp = np.array(scale) * 200.0
    src_w, dst_w, dst_h = scale_tmp[0], output_size[0], output_size[1]
    src_dir = get_dir([0, src_w * -0.5], np.pi * rot / 180)
    dst_dir = np.array([0, dst_w * -0.5], np.float32)
    src, dst = np.zeros((3, 2), np.float32), np.zeros((3, 2), np.float32)
    src[0, :] = center
    src[1, :] = center + src_dir
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    src[2:, :], dst[2:, :] = get_3rd_point(src[0, :], src[1, :]), get_3rd_point(dst[0, :], dst[1, :])
    return cv2.getAffineTransform(np.float32(dst), np.float32(src)) if inv else \
        cv2.getAffineTransform(np.float32(src), np.float32(dst))


def ref_xywh2cs(x, y, w, h, aspect_ratio):
    center = np.array([x + w * 0.5, y + h * 0.5], np.float32)
    if w > aspect_ratio * h: h = w / aspect_ratio
    elif w < aspect_ratio * h: w = h * aspect_ratio
    return center, np.array([w / 200.0, h / 200.0], np.float32) * 1.25


def ref_fliplr_joints(joints, joints_vis, width, matched_parts):
    joints[:, 0] = width - joints[:, 0] - 1
    for a, b in matched_parts:
        joints[a, :], joints[b, :] = joints[b, :], joints[a, :].copy()
        joints_vis[a, :], joints_vis[b, :] = joints_vis[b, :], joints_vis[a, :].copy()
    return joints * joints_vis, joints_vis


class ReferenceTopDown:
    "A direct transcription of the reference training sample (behaviour, not code, of HRNet's JointsDataset)."
    def __init__(self, people, root, image_size=(192, 256), heatmap_size=(48, 64), sigma=2, seed=0):
        self.root = root
        self.image_size, self.heatmap_size, self.sigma = np.array(image_size), np.array(heatmap_size), sigma
        self.aspect_ratio = image_size[0] / image_size[1]
        self.db = []                                       # the reference's db: centre/scale computed at load time
        for p in people:
            c, s = ref_xywh2cs(*p["bbox"], self.aspect_ratio)
            j3, v3 = np.zeros((17, 3)), np.zeros((17, 3))
            j3[:, :2], v3[:, :2] = p["joints"], p["joints_vis"][:, None]
            self.db.append(dict(image=str(root / p["image"]), center=c, scale=s, joints_3d=j3, joints_3d_vis=v3,
                                filename="", imgnum=0))
        self.upper = list(range(11))
        self.sf, self.rf, self.flip_pairs = 0.35, 45, FLIP_PAIRS
        np.random.seed(seed); random.seed(seed)

    def half_body(self, joints, joints_vis):
        upper, lower = [], []
        for j in range(17):
            if joints_vis[j][0] > 0: (upper if j in self.upper else lower).append(joints[j])
        sel = upper if (np.random.randn() < 0.5 and len(upper) > 2) else (lower if len(lower) > 2 else upper)
        if len(sel) < 2: return None, None
        sel = np.array(sel, np.float32)
        center = sel.mean(axis=0)[:2]
        lt, rb = np.amin(sel, axis=0), np.amax(sel, axis=0)
        w, h = rb[0] - lt[0], rb[1] - lt[1]
        if w > self.aspect_ratio * h: h = w / self.aspect_ratio
        elif w < self.aspect_ratio * h: w = h * self.aspect_ratio
        return center, np.array([w / 200.0, h / 200.0], np.float32) * 1.5

    def generate_target(self, joints, joints_vis):
        K, (W, H) = len(joints), self.heatmap_size
        target_weight = np.ones((K, 1), np.float32); target_weight[:, 0] = joints_vis[:, 0]
        target = np.zeros((K, H, W), np.float32)
        tmp = self.sigma * 3
        for j in range(K):
            stride = self.image_size / self.heatmap_size
            mu_x, mu_y = int(joints[j][0] / stride[0] + 0.5), int(joints[j][1] / stride[1] + 0.5)
            ul, br = [int(mu_x - tmp), int(mu_y - tmp)], [int(mu_x + tmp + 1), int(mu_y + tmp + 1)]
            if ul[0] >= W or ul[1] >= H or br[0] < 0 or br[1] < 0:
                target_weight[j] = 0; continue
            size = 2 * tmp + 1
            x = np.arange(0, size, 1, np.float32); y = x[:, np.newaxis]
            x0 = y0 = size // 2
            g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * self.sigma ** 2))
            gx, gy = (max(0, -ul[0]), min(br[0], W) - ul[0]), (max(0, -ul[1]), min(br[1], H) - ul[1])
            ix, iy = (max(0, ul[0]), min(br[0], W)), (max(0, ul[1]), min(br[1], H))
            if target_weight[j] > 0.5:
                target[j][iy[0]:iy[1], ix[0]:ix[1]] = g[gy[0]:gy[1], gx[0]:gx[1]]
        return target, target_weight

    def __getitem__(self, idx):
        rec = copy.deepcopy(self.db[idx])
        data = cv2.imread(rec["image"], cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        data = cv2.cvtColor(data, cv2.COLOR_BGR2RGB)
        joints, joints_vis = rec["joints_3d"], rec["joints_3d_vis"]
        c, s = rec["center"], rec["scale"]
        if np.sum(joints_vis[:, 0]) > 8 and np.random.rand() < 0.3:
            ch, sh = self.half_body(joints, joints_vis)
            if ch is not None: c, s = ch, sh
        s = s * np.clip(np.random.randn() * self.sf + 1, 1 - self.sf, 1 + self.sf)
        r = np.clip(np.random.randn() * self.rf, -self.rf * 2, self.rf * 2) if random.random() <= 0.6 else 0
        if random.random() <= 0.5:
            data = data[:, ::-1, :]
            joints, joints_vis = ref_fliplr_joints(joints, joints_vis, data.shape[1], self.flip_pairs)
            c[0] = data.shape[1] - c[0] - 1
        trans = ref_affine(c, s, r, self.image_size)
        inp = cv2.warpAffine(data, trans, (int(self.image_size[0]), int(self.image_size[1])), flags=cv2.INTER_LINEAR)
        t = torch.from_numpy(inp).permute(2, 0, 1).contiguous().float().div(255)          # ToTensor
        t = t.sub_(torch.as_tensor(MEAN, dtype=t.dtype).view(-1, 1, 1))                   # Normalize
        t = t.div_(torch.as_tensor(STD, dtype=t.dtype).view(-1, 1, 1))
        for i in range(17):
            if joints_vis[i, 0] > 0.0:
                joints[i, 0:2] = (trans @ np.array([joints[i, 0], joints[i, 1], 1.0]).T)[:2]
        target, target_weight = self.generate_target(joints, joints_vis)
        return t, torch.from_numpy(target), torch.from_numpy(target_weight)


# ---------------------------------------------------------------- reference bottom-up (HigherHRNet)
def ref_bu_affine(center, scale, res, rot=0):
    "The reference 3x3 crop matrix (200-px scale, rotation about the output centre)."
    h = 200 * scale
    t = np.zeros((3, 3)); t[0, 0] = float(res[1]) / h; t[1, 1] = float(res[0]) / h
    t[0, 2] = res[1] * (-float(center[0]) / h + .5); t[1, 2] = res[0] * (-float(center[1]) / h + .5); t[2, 2] = 1
    if rot != 0:
        rot = -rot
        rot_mat = np.zeros((3, 3)); rr = rot * np.pi / 180
        sn, cs = np.sin(rr), np.cos(rr)
        rot_mat[0, :2] = [cs, -sn]; rot_mat[1, :2] = [sn, cs]; rot_mat[2, 2] = 1
        t_mat = np.eye(3); t_mat[0, 2] = -res[1] / 2; t_mat[1, 2] = -res[0] / 2
        t_inv = t_mat.copy(); t_inv[:2, 2] *= -1
        t = np.dot(t_inv, np.dot(rot_mat, np.dot(t_mat, t)))
    return t


class ReferenceBottomUp:
    "A direct transcription of the reference bottom-up training sample (HigherHRNet COCO keypoints + transforms)."
    def __init__(self, people, root, input_size=512, output_sizes=(128, 256), max_people=30, seed=0):
        self.images = {}
        for p in people: self.images.setdefault(p["image_id"], []).append(p)
        self.images = list(self.images.values())
        self.root, self.input_size, self.output_sizes, self.max_people = root, input_size, output_sizes, max_people
        self.flip_index = get_skeleton("coco").flip_index
        np.random.seed(seed)

    def get_mask(self, anno, h, w):
        from pycocotools import mask as mu
        m = np.zeros((h, w))
        for obj in anno:
            if obj["iscrowd"]:
                rle = mu.frPyObjects(obj["mask_source"], h, w)
                m += mu.decode(rle)
            elif obj["num_keypoints"] == 0:
                for rle in mu.frPyObjects(obj["mask_source"], h, w): m += mu.decode(rle)
        return m < 0.5

    def heatmaps(self, joints, res):
        sigma = res / 64
        size = 6 * sigma + 3
        x = np.arange(0, size, 1, float); y = x[:, np.newaxis]
        x0 = y0 = 3 * sigma + 1
        g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma ** 2))
        hms = np.zeros((17, res, res), np.float32)
        for p in joints:
            for idx, pt in enumerate(p):
                if pt[2] > 0:
                    x, y = int(pt[0]), int(pt[1])
                    if x < 0 or y < 0 or x >= res or y >= res: continue
                    ul = int(np.round(x - 3 * sigma - 1)), int(np.round(y - 3 * sigma - 1))
                    br = int(np.round(x + 3 * sigma + 2)), int(np.round(y + 3 * sigma + 2))
                    c, d = max(0, -ul[0]), min(br[0], res) - ul[0]
                    a, b = max(0, -ul[1]), min(br[1], res) - ul[1]
                    cc, dd = max(0, ul[0]), min(br[0], res)
                    aa, bb = max(0, ul[1]), min(br[1], res)
                    hms[idx, aa:bb, cc:dd] = np.maximum(hms[idx, aa:bb, cc:dd], g[a:b, c:d])
        return hms

    def ae_joints(self, joints, res):
        visible = np.zeros((self.max_people, 17, 2))
        for i in range(min(len(joints), self.max_people)):
            tot = 0
            for idx, pt in enumerate(joints[i]):
                x, y = int(pt[0]), int(pt[1])
                if pt[2] > 0 and 0 <= y < res and 0 <= x < res:
                    visible[i][tot] = (idx * res ** 2 + y * res + x, 1); tot += 1
        return visible

    def __getitem__(self, idx):
        anno = self.images[idx]
        img = cv2.imread(str(self.root / anno[0]["image"]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        mask = self.get_mask(anno, h, w)
        anno = [o for o in anno if o["iscrowd"] == 0 or o["num_keypoints"] > 0]
        joints = np.stack([o["keypoints"] for o in anno]) if anno else np.zeros((0, 17, 3))
        masks = [mask.copy() for _ in self.output_sizes]
        joints_list = [joints.copy() for _ in self.output_sizes]
        center, scale = np.array((w / 2, h / 2)), min(w, h) / 200
        scale *= np.random.random() * (1.5 - 0.75) + 0.75
        rot = (np.random.random() * 2 - 1) * 30
        dx = np.random.randint(-40 * scale, 40 * scale); dy = np.random.randint(-40 * scale, 40 * scale)
        center = center + (dx, dy)
        for i, res in enumerate(self.output_sizes):
            M = ref_bu_affine(center, scale, (res, res), rot)[:2]
            masks[i] = cv2.warpAffine((masks[i] * 255).astype(np.uint8), M, (res, res)) / 255 > 0.5
            jl = joints_list[i]
            jl[:, :, 0:2] = np.dot(np.concatenate((jl[:, :, 0:2], jl[:, :, 0:1] * 0 + 1), axis=2), M.T)
        M = ref_bu_affine(center, scale, (self.input_size,) * 2, rot)[:2]
        img = cv2.warpAffine(img, M, (self.input_size, self.input_size))
        if random.random() < 0.5:
            img = img[:, ::-1] - np.zeros_like(img)
            for i, res in enumerate(self.output_sizes):
                masks[i] = masks[i][:, ::-1].copy()
                joints_list[i] = joints_list[i][:, self.flip_index]
                joints_list[i][:, :, 0] = res - joints_list[i][:, :, 0] - 1
        t = torch.from_numpy(img).permute(2, 0, 1).contiguous().float().div(255)
        t = t.sub_(torch.as_tensor(MEAN, dtype=t.dtype).view(-1, 1, 1))                   # Normalize
        t = t.div_(torch.as_tensor(STD, dtype=t.dtype).view(-1, 1, 1))
        targets = [self.heatmaps(j, r) for j, r in zip(joints_list, self.output_sizes)]
        ae = [self.ae_joints(j, r) for j, r in zip(joints_list, self.output_sizes)]
        return t, targets, masks, ae


# ---------------------------------------------------------------- timing
def _time(get, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n): get(i)
    return time.perf_counter() - t0


def compare(name: str, ours, ref, n_items: int, rounds: int, reps: int) -> None:
    n = n_items * reps
    get_ours, get_ref = (lambda i: ours[i % n_items]), (lambda i: ref[i % n_items])
    _time(get_ours, n_items); _time(get_ref, n_items)                       # warm caches / imports
    t_ours, t_ref = [], []
    for _ in range(rounds):                                                  # alternate the two
        t_ours.append(_time(get_ours, n)); t_ref.append(_time(get_ref, n))
    so, sr = n / np.median(t_ours), n / np.median(t_ref)
    print(f"{name}: {so:.1f} samples/s   (poselab.data.pipelines)")
    print(f"{name}: {sr:.1f} samples/s   (reference implementation)")
    print(f"{name} ratio: {so / sr:.2f}x")


def main(rounds: int = 9, reps: int = 4, pin: bool = True, exact_decode: bool = False) -> None:
    if pin and hasattr(os, "sched_setaffinity"): os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    people = coco_people(FIXTURE / "test_coco.json")
    labelled = [p for p in people if p["num_keypoints"] > 0 and not p["iscrowd"]]
    sj = getattr(pipelines, "simplejpeg", None)
    print(f"COCO fixture: {len(labelled)} people, {len({p['image_id'] for p in people})} images; "
          f"one thread, CPU cores {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}; "
          f"JPEG decoder: {'simplejpeg ' + sj.__version__ if sj is not None else 'OpenCV ' + cv2.__version__}")
    fast = {"fast_decode": False} if exact_decode else {}
    td = TopDownDataset(labelled, FIXTURE, input_size=(192, 256), heatmap_size=(48, 64), train=True, seed=0, **fast)
    compare("topdown", td, ReferenceTopDown(labelled, FIXTURE), len(labelled), rounds, reps)
    bu = BottomUpDataset(people, FIXTURE, input_size=512, output_sizes=(128, 256), train=True, seed=0, **fast)
    compare("bottomup", bu, ReferenceBottomUp(people, FIXTURE), len(bu), rounds, reps * 3)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU core")
    ap.add_argument("--exact-decode", action="store_true", help="poselab decodes with the exact IDCT (fast_decode=False)")
    a = ap.parse_args()
    main(a.rounds, a.reps, not a.no_pin, a.exact_decode)
