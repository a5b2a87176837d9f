"""COCO keypoint evaluation of 5,000 images: pycocotools against faster-coco-eval, through
`poselab.metrics.coco_keypoint_eval`.

The ground truth replicates the real people of tests/fixtures/evaluation/test_coco.json at random offsets
(1-6 per image); predictions are the same people with Gaussian keypoint jitter proportional to their size,
random scores, a few missed people and some false positives.

Run:  python benchmarks/coco_eval_bench.py [--images 5000] [--repeats 2]
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "evaluation" / "test_coco.json"


def make_set(num_images: int = 5000, seed: int = 0):
    "Synthetic (gt dict, results list) built from the fixture's people."
    rng = np.random.default_rng(seed)
    src = json.loads(FIXTURE.read_text())
    people = [a for a in src["annotations"] if not a["iscrowd"]]
    W, H = 640, 480
    images, anns, results = [], [], []
    for img_id in range(1, num_images + 1):
        images.append({"id": img_id, "width": W, "height": H, "file_name": f"{img_id:012d}.jpg"})
        for _ in range(rng.integers(1, 7)):
            a = people[rng.integers(len(people))]
            x, y, w, h = a["bbox"]
            dx, dy = rng.uniform(-x, max(W - x - w, 0) + 1e-6), rng.uniform(-y, max(H - y - h, 0) + 1e-6)
            k = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
            k[:, :2] += np.where(k[:, 2:] > 0, [dx, dy], 0)
            ann = {"id": len(anns) + 1, "image_id": img_id, "category_id": 1, "iscrowd": 0,
                   "area": a["area"], "bbox": [x + dx, y + dy, w, h], "num_keypoints": a["num_keypoints"],
                   "keypoints": k.reshape(-1).round(2).tolist()}
            anns.append(ann)
            if a["num_keypoints"] == 0 or rng.random() < 0.05:      # nothing to predict / a miss
                continue
            p = k.copy()
            p[:, :2] += rng.normal(0, 0.04 * np.sqrt(a["area"]) * rng.uniform(0.3, 2), (17, 2))
            p[:, 2] = rng.uniform(0.2, 1.0, 17)
            results.append({"image_id": img_id, "category_id": 1, "keypoints": p.reshape(-1).tolist(),
                            "score": float(rng.uniform(0.3, 1.0))})
        if rng.random() < 0.3:                                         # a false positive
            p = np.asarray(people[rng.integers(len(people))]["keypoints"], np.float64).reshape(-1, 3)
            p[:, :2] = rng.uniform(0, [W, H], (17, 2)) * 0.3 + rng.uniform(0, [W * 0.7, H * 0.7])
            p[:, 2] = rng.uniform(0.1, 0.6, 17)
            results.append({"image_id": img_id, "category_id": 1, "keypoints": p.reshape(-1).tolist(),
                            "score": float(rng.uniform(0.05, 0.5))})
    gt = {"images": images, "annotations": anns, "categories": copy.deepcopy(src["categories"])}
    return gt, results


def main(argv=None):
    from poselab.metrics import coco_keypoint_eval
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    gt, res = make_set(args.images)
    backends = ["pycocotools"]
    try:
        import faster_coco_eval  # noqa: F401
        backends.append("faster_coco_eval")
    except ImportError:
        print("faster-coco-eval is not installed: timing pycocotools only")
    stats, times = {}, {b: [] for b in backends}
    for _ in range(args.repeats):
        for b in backends:
            t0, c0 = time.perf_counter(), time.process_time()
            stats[b] = coco_keypoint_eval(copy.deepcopy(gt), res, backend=b)
            times[b].append((time.perf_counter() - t0, time.process_time() - c0))
    print(f"{args.images} images, {len(gt['annotations'])} people, {len(res)} predictions")
    for b in backends:
        wall, cpu = min(t[0] for t in times[b]), min(t[1] for t in times[b])
        print(f"{b:17s} {wall:6.2f} s wall  {cpu:6.2f} s cpu   AP {stats[b]['AP']:.4f}  AR {stats[b]['AR']:.4f}")
    if len(backends) == 2:
        diff = max(abs(stats[backends[0]][k] - stats[backends[1]][k]) for k in stats[backends[0]])
        print(f"max |difference| over the 10 stats: {diff:.3g}")


if __name__ == "__main__":
    main()
