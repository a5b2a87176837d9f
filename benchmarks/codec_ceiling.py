"""How much COCO AP a top-down codec can give at most, and how much keypoint precision AP asks for.

1. Ceiling: the ground-truth heatmap targets of the synthetic validation people are decoded back to image
   coordinates (no network) and scored with COCO AP, GT boxes. The official encoding snaps every joint to an
   integer heatmap pixel (`target_convention="hrnet"`, quarter-pixel decoding); DARK centres the Gaussians on
   the exact sub-pixel positions (`"unbiased"`) and decodes with its Taylor step.
2. Demand: every labelled joint of the validation ground truth is moved by Gaussian noise of a given fraction
   of the person's crop height; the table gives the AP that this much error still earns.

Run: python benchmarks/codec_ceiling.py [--data data] [--sizes 64x96 96x128]
Needs the synthetic world (`python -m poselab.synthetic`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from poselab.codecs import get_final_preds
from poselab.data.formats import load_dataset
from poselab.data.pipelines import TopDownDataset
from poselab.grouping import rescore_with_boxes
from poselab.metrics import coco_keypoint_eval, coco_results


def ceiling(root: str, size: tuple[int, int], sigma: float, convention: str) -> float:
    w, h = size
    recs = [r for r in load_dataset("synthetic", root, "val", aspect_ratio=w / h) if r.scale is not None and (r.scale > 0).all()]
    ds = TopDownDataset(recs, input_size=size, heatmap_size=(w // 4, h // 4), sigma=sigma, train=False,
                        target_convention=convention)
    out = []
    for b in DataLoader(ds, batch_size=64, num_workers=0):
        m = b["meta"]
        xy, conf = get_final_preds(b["target"].numpy(), m["center"].numpy(), m["scale"].numpy(),
                                   "dark" if convention == "unbiased" else True)
        out.append((m["image_id"].numpy(), np.concatenate([xy, np.maximum(conf, 0.5)], -1), m["score"].numpy()))
    ids, kps, sc = (np.concatenate(v) for v in zip(*out))
    gt = json.loads((Path(root) / "synthetic/annotations/person_keypoints_val.json").read_text())
    return coco_keypoint_eval(gt, coco_results(ids, kps, rescore_with_boxes(sc, kps[..., 2])))["AP"]


def demand(root: str, fractions, seed: int = 0) -> dict:
    gt = json.loads((Path(root) / "synthetic/annotations/person_keypoints_val.json").read_text())
    rng = np.random.default_rng(seed)
    res = {}
    for f in fractions:
        preds = []
        for a in gt["annotations"]:
            k = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
            crop_h = 1.25 * max(a["bbox"][3], a["bbox"][2] / 0.75)
            k[:, :2] += rng.normal(0, f * crop_h, (len(k), 2)); k[:, 2] = 1
            preds.append(dict(image_id=a["image_id"], category_id=1, keypoints=k.ravel().tolist(), score=1.0))
        res[f] = coco_keypoint_eval(gt, preds)["AP"]
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--sizes", nargs="+", default=["64x96", "96x128"])
    ap.add_argument("--sigma", type=float, default=2.0)
    a = ap.parse_args()
    print("| input | codec | AP ceiling |\n|---|---|---|")
    for s in a.sizes:
        size = tuple(int(v) for v in s.split("x"))
        for conv, name in (("hrnet", "official (integer centres, quarter shift)"), ("unbiased", "DARK")):
            print(f"| {s} | {name} | {ceiling(a.data, size, a.sigma, conv):.3f} |", flush=True)
    print("\n| joint noise (fraction of crop height) | AP |\n|---|---|")
    for f, v in demand(a.data, (0.01, 0.02, 0.03, 0.04, 0.06)).items():
        print(f"| {f:.2f} | {v:.3f} |")


if __name__ == "__main__":
    main()
