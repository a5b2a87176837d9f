"""The papermill evaluation notebook in its three modes, on a tiny synthetic world: run folders of the training engine
(top-down, hourglass, bottom-up), a registry model with an official-style weights file and a detection-results file,
and results only (no ground truth) on the COCO fixture's images and real detector boxes."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from poselab.models.core import create_model
from poselab.train import RunConfig, train

ROOT = Path(__file__).resolve().parents[1]
PICTURES = ["curve.png", "joint_accuracy.png", "predictions.png"]
TINY = {"deconv_filters": [32, 32, 32]}


def papermill(out: Path, *params: str) -> None:
    args = [sys.executable, "-m", "papermill", str(ROOT / "nbs/evaluate.ipynb"), str(out), "-k", "python3", *params]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-3000:]


def check_folder(folder: Path) -> dict:
    "metrics.json, predictions.json and the three pictures exist; returns metrics.json."
    assert sorted(p.name for p in folder.iterdir()) == sorted(["metrics.json", "predictions.json", *PICTURES])
    for name in PICTURES: assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    saved = json.loads((folder / "metrics.json").read_text())
    m = saved["metrics"]
    for k in ("AP", "AP50", "AR", "joint_accuracy_mean"): assert 0.0 <= m[k] <= 1.0, (k, m[k])
    assert 0.0 <= m["PCK@0.2"] <= 100.0
    assert len(m["joint_accuracy"]) == 17 and all(v is None or 0.0 <= v <= 1.0 for v in m["joint_accuracy"].values())
    assert m["people"] == 20 and 0 < m["matched"] <= m["people"]
    assert all(math.isfinite(v) and 0.0 <= v <= 100.0 for v in m["curve"]["mean"])
    return saved


@pytest.mark.slow
def test_run_dir_mode(data_root, tmp_path):
    "A two-step run of the engine, evaluated through its folder with the run's own settings."
    cfg = RunConfig(data_root=str(data_root), synthetic_train=16, synthetic_val=8, output_dir=str(tmp_path / "runs"),
                    input_size=(64, 64), batch_size=4, epochs=1, limit_batches=2, workers=0, logger="none",
                    progress=False, log_images=False, flip_test=False, model_kwargs=TINY)
    train(cfg)
    run = cfg.run_dir
    papermill(tmp_path / "evaluate.ipynb", "-p", "run_dir", str(run))
    saved = check_folder(run / "eval_best")
    p = saved["protocol"]
    assert (p["checkpoint"], p["model"], p["input_size"], p["flip_test"]) == (str(run / "best.pt"), "pose_resnet_18",
                                                                              [64, 64], False)
    assert (p["dataset"], p["split"], p["boxes"]) == ("synthetic", "val", "gt")


@pytest.mark.slow
def test_checkpoint_mode_with_detections(data_root, tmp_path):
    "A random pose_resnet_18 saved as an official-style state dict, with detector boxes and the flip test."
    torch.manual_seed(0)
    ckpt = tmp_path / "pose_resnet_18_tiny.pth"
    torch.save(create_model("pose_resnet_18", num_joints=17, **TINY).state_dict(), ckpt)
    gt = json.loads((data_root / "synthetic/annotations/person_keypoints_val.json").read_text())
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.8} for a in gt["annotations"]]
    dets += [{"image_id": a["image_id"], "category_id": 1, "bbox": [0, 0, 30, 30], "score": 0.1} for a in gt["annotations"]]
    det_path = tmp_path / "detections.json"
    det_path.write_text(json.dumps(dets))
    out = tmp_path / "eval"
    papermill(tmp_path / "evaluate.ipynb", "-p", "model", "pose_resnet_18", "-p", "checkpoint", str(ckpt),
              "-y", "model_kwargs: {deconv_filters: [32, 32, 32]}", "-p", "dataset", "synthetic",
              "-p", "data_root", str(data_root), "-p", "boxes", str(det_path), "-p", "box_score_thr", "0.5",
              "-p", "input_size", "64", "-p", "output_dir", str(out))
    saved = check_folder(out)
    p = saved["protocol"]
    assert (p["checkpoint"], p["boxes"], p["box_score_thr"], p["flip_test"]) == (str(ckpt), str(det_path), 0.5, True)
    assert p["boxes_evaluated"] == len(gt["annotations"])            # the weak boxes are below the threshold
    preds = json.loads((out / "predictions.json").read_text())
    assert 0 < len(preds) <= len(gt["annotations"]) and len(preds) == saved["metrics"]["scored"]
    assert {len(r["keypoints"]) for r in preds} == {51} and all(0.0 <= r["score"] <= 1.0 for r in preds)


def test_papermill_notebook_has_all_modes():
    "The entry notebook's parameters offer a run folder, model + checkpoint and results only; it calls the package only."
    nb = json.loads((ROOT / "nbs/evaluate.ipynb").read_text())
    params = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    names = {line.split("=")[0].strip() for line in "".join(params["source"]).splitlines() if "=" in line}
    assert {"run_dir", "model", "checkpoint", "dataset", "data_root", "split", "boxes", "flip_test", "input_size",
            "output_dir", "limit", "task", "scales", "images", "image_root"} <= names
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "from poselab.evaluate import run_evaluation" in code and "def " not in code


FIXTURES = ROOT / "tests" / "fixtures"


def tiny_run(data_root, out, **kw) -> Path:
    "A one-epoch, two-step run of the engine on the tiny world; returns its folder."
    cfg = RunConfig(**{**dict(data_root=str(data_root), synthetic_train=16, synthetic_val=8, output_dir=str(out),
                              batch_size=4, epochs=1, limit_batches=2, workers=0, logger="none", progress=False,
                              log_images=False, flip_test=False), **kw})
    train(cfg)
    return cfg.run_dir


@pytest.mark.slow
def test_hourglass_run_dir(data_root, tmp_path):
    "A stacked hourglass run (visibility head and bar occlusion on) is evaluated on the world's MPII-style people."
    run = tiny_run(data_root, tmp_path / "runs", task="hourglass", input_size=(64, 64),
                   model_kwargs={"num_stacks": 2, "depth": 2, "num_feats": 32, "visibility_head": True},
                   options={"masking_prob": 0.5})
    papermill(tmp_path / "evaluate.ipynb", "-p", "run_dir", str(run))
    out = run / "eval_best"
    assert sorted(p.name for p in out.iterdir()) == sorted(["metrics.json", "predictions.json", *PICTURES])
    saved = json.loads((out / "metrics.json").read_text())
    m, p = saved["metrics"], saved["protocol"]
    assert (p["task"], p["skeleton"], p["model"], p["flip_test"], p["input_size"]) == ("hourglass", "mpii",
                                                                                     "stacked_hourglass", False, [64, 64])
    final = json.loads((run / "metrics.json").read_text())["final"]       # the engine's validation of the same weights
    assert {k: m[k] for k in final} == pytest.approx(final, abs=1e-9)
    people = json.loads((data_root / "synthetic/mpii/val.json").read_text())
    assert m["people"] == len(people) and len(m["joint_accuracy"]) == 16
    assert all(0.0 <= m[k] <= 100.0 for k in ("PCKh", "PCKh@0.1", "PCKh_Head", "PCKh_Ankle"))
    preds = json.loads((out / "predictions.json").read_text())
    assert len(preds) == len(people) and {len(r["joints"]) for r in preds} == {16}


@pytest.mark.slow
def test_bottomup_run_dir_flip_and_scales(data_root, tmp_path):
    "A HigherHRNet run is evaluated on whole images, with the flip test at two scales, and scored with COCO AP."
    run = tiny_run(data_root, tmp_path / "runs", task="bottomup", input_size=(64, 64), batch_size=2, limit_batches=1,
                   limit_val=2)
    papermill(tmp_path / "evaluate.ipynb", "-p", "run_dir", str(run), "-p", "flip_test", "True",
              "-p", "scales", "[1, 0.5]", "-p", "limit", "3")
    out = run / "eval_best"
    assert sorted(p.name for p in out.iterdir()) == sorted(["metrics.json", "predictions.json", *PICTURES])
    saved = json.loads((out / "metrics.json").read_text())
    m, p = saved["metrics"], saved["protocol"]
    assert (p["task"], p["model"], p["flip_test"], p["scales"], p["input_size"], p["limit"]) == (
        "bottomup", "higher_hrnet_w32", True, [1.0, 0.5], 64, 3)
    for k in ("AP", "AP50", "AR"): assert 0.0 <= m[k] <= 1.0
    gt = json.loads((data_root / "synthetic/annotations/person_keypoints_val.json").read_text())
    first = sorted(im["id"] for im in gt["images"])[:3]
    assert m["people"] == sum(a["image_id"] in first and a["num_keypoints"] > 0 for a in gt["annotations"])
    preds = json.loads((out / "predictions.json").read_text())
    assert len(preds) == m["scored"] == p["people_found"] and {r["image_id"] for r in preds} <= set(first)


@pytest.mark.slow
def test_results_only_on_coco_fixture_detections(tmp_path):
    "COCO test-dev style: the fixture's 4 images (image list only) and real detector boxes give a results file."
    torch.manual_seed(0)
    ckpt = tmp_path / "pose_resnet_18_tiny.pth"
    torch.save(create_model("pose_resnet_18", num_joints=17, **TINY).state_dict(), ckpt)
    info = {"images": json.loads((FIXTURES / "pipelines/test_coco.json").read_text())["images"]}   # no annotations
    (tmp_path / "image_info.json").write_text(json.dumps(info))
    dets_path = FIXTURES / "datasets/coco/test_coco_det_AP_H_56.json"
    out = tmp_path / "results"
    papermill(tmp_path / "evaluate.ipynb", "-p", "model", "pose_resnet_18", "-p", "checkpoint", str(ckpt),
              "-y", "model_kwargs: {deconv_filters: [32, 32, 32]}", "-p", "images", str(tmp_path / "image_info.json"),
              "-p", "image_root", str(FIXTURES / "pipelines"), "-p", "boxes", str(dets_path),
              "-p", "box_score_thr", "0.5", "-p", "input_size", "64", "-p", "output_dir", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "predictions.json", "predictions.png"]
    saved = json.loads((out / "metrics.json").read_text())
    m, p = saved["metrics"], saved["protocol"]
    strong = [d for d in json.loads(dets_path.read_text()) if d["score"] >= 0.5]
    assert (p["ground_truth"], p["people"], p["boxes_evaluated"], p["box_score_thr"]) == (None, None, len(strong), 0.5)
    assert (m["images"], m["boxes"]) == (4, len(strong)) and "AP" not in m
    preds = json.loads((out / "predictions.json").read_text())
    assert 0 < len(preds) == m["scored"] <= len(strong)
    assert {r["image_id"] for r in preds} <= {im["id"] for im in info["images"]}
    assert {len(r["keypoints"]) for r in preds} == {51} and {r["category_id"] for r in preds} == {1}
    assert all(0.0 <= r["score"] <= 1.0 for r in preds)
