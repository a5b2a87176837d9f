"""Prediction from a tiny training run: the command line on photos and on a video, its errors, every model family on a
real network, and ONNX equality with the PyTorch pipeline."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from poselab.predict import Predictor, detection_boxes, export_onnx, main
from poselab.train import RunConfig, train

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests/fixtures/photos"
COCO = ROOT / "tests/fixtures/pipelines"


@pytest.fixture(scope="module")
def tiny_run(data_root, tmp_path_factory) -> Path:
    "A top-down run of a few steps on the tiny synthetic world (DARK codec, the recipe's)."
    out = tmp_path_factory.mktemp("runs")
    cfg = RunConfig(data_root=str(data_root), synthetic_train=16, synthetic_val=8, output_dir=str(out), input_size=(64, 64),
                    batch_size=4, epochs=2, limit_batches=4, limit_val=4, workers=0, logger="none", progress=False,
                    log_images=False, run_name="tiny", lr=5e-3)
    train(cfg)
    return out / "tiny"


def test_cli_photos_writes_results_and_overlays(tiny_run, tmp_path):
    out = tmp_path / "pred"
    r = subprocess.run([sys.executable, "-m", "poselab.predict", str(PHOTOS), "--run", str(tiny_run), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "keypoints.json").read_text())
    images = json.loads((out / "images.json").read_text())
    assert sorted(i["file_name"] for i in images) == ["camera.png", "grace_hopper.jpg"]
    assert len(res) == 2 and all(len(p["keypoints"]) == 51 and p["category_id"] == 1 for p in res)   # whole image: one person each
    assert {p["image_id"] for p in res} == {i["id"] for i in images}
    pngs = sorted(p.name for p in (out / "overlays").glob("*.png"))
    assert pngs == ["camera.png", "grace_hopper.png"]
    over = cv2.imread(str(out / "overlays/grace_hopper.png"))
    assert over.shape == cv2.imread(str(PHOTOS / "grace_hopper.jpg")).shape
    assert "2 frames" in r.stdout


def test_cli_video_writes_overlay_video(tiny_run, data_root, tmp_path):
    frames = sorted((data_root / "synthetic/images/val").glob("*.jpg"))[:6]
    first = cv2.imread(str(frames[0]))
    h, w = first.shape[:2]
    video = tmp_path / "clip.mp4"
    wr = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (w, h))
    for f in frames: wr.write(cv2.resize(cv2.imread(str(f)), (w, h)))
    wr.release()
    out = main([str(video), "--run", str(tiny_run), "--out", str(tmp_path / "v"), "--quiet"])
    assert out["frames"] == 6 and out["videos"] == [str(tmp_path / "v/clip_overlay.mp4")]
    cap = cv2.VideoCapture(out["videos"][0])
    n = 0
    while cap.read()[0]: n += 1
    assert n == 6 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == w
    res = json.loads(Path(out["keypoints"]).read_text())
    assert sorted({p["image_id"] for p in res}) == list(range(6))
    assert not list((tmp_path / "v").glob(".*tmp*"))


def test_cli_detections_give_one_person_per_box(tiny_run, tmp_path):
    det = tmp_path / "det.json"
    det.write_text(json.dumps([{"image_id": 40083, "category_id": 1, "bbox": [38.08, 110.95, 174.71, 174.71], "score": 0.9},
                               {"image_id": 40083, "category_id": 1, "bbox": [257.76, 139.06, 140.05, 154.21], "score": 0.8},
                               {"image_id": 785, "category_id": 1, "bbox": [280.79, 44.73, 218.7, 346.68], "score": 0.1}]))
    out = main([str(COCO / "000000040083.jpg"), "--run", str(tiny_run), "--out", str(tmp_path / "d"),
                "--detections", str(det), "--quiet", "--no-overlays"])
    res = json.loads(Path(out["keypoints"]).read_text())
    assert [p["image_id"] for p in res] == [40083, 40083]
    assert out["overlays"] == []


@pytest.mark.parametrize("args, message", [
    (["missing_dir_xyz", "--run", "RUN", "--out", "OUT"], "source missing_dir_xyz not found"),
    (["PHOTOS", "--run", "no_such_run", "--out", "OUT"], "run directory no_such_run not found"),
    (["PHOTOS", "--model", "resnet_18", "--out", "OUT"], "model='resnet_18' is not valid; valid choices"),
    (["PHOTOS", "--model", "pose_resnet_18", "--checkpoint", "nope.pt", "--out", "OUT"], "checkpoint nope.pt not found"),
    (["PHOTOS", "--run", "RUN", "--family", "3d", "--out", "OUT"], "invalid choice: '3d'"),
    (["PHOTOS", "--run", "RUN", "--out", "OUT", "--detections", "nope.json"], "detection file nope.json not found"),
    (["PHOTOS", "--out", "OUT"], "one of the arguments --run --model --onnx is required"),
])
def test_cli_errors_are_one_line_with_status_2(tiny_run, tmp_path, capsys, args, message):
    sub = {"RUN": str(tiny_run), "OUT": str(tmp_path / "o"), "PHOTOS": str(PHOTOS)}
    with pytest.raises(SystemExit) as e:
        main([sub.get(a, a) for a in args])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()                           # nothing built or written


def test_every_family_runs_a_real_network():
    img = cv2.cvtColor(cv2.imread(str(PHOTOS / "grace_hopper.jpg")), cv2.COLOR_BGR2RGB)
    torch.manual_seed(0)
    hg = Predictor("hg_s1_b1", input_size=(128, 128)).predict(img)
    assert hg.keypoints.shape == (1, 16, 3) and np.isfinite(hg.keypoints).all()
    bu = Predictor("higher_hrnet_w32", input_size=128, scales=(1.0, 0.5), detection_threshold=0.0).predict(img)
    assert bu.keypoints.ndim == 3 and bu.keypoints.shape[1:] == (17, 3) and len(bu.scores) == len(bu.keypoints)


def test_depth_family_gives_3d(tmp_path):
    from poselab.models.hourglass import HourglassDepth
    net = HourglassDepth(num_stacks=1, num_modules=1, num_feats=32, num_reg_modules=1, num_joints=16, input_size=64)
    p = Predictor(net, family="depth", input_size=(64, 64))
    img = np.zeros((80, 60, 3), np.uint8)
    pr = p.predict(img)
    assert pr.keypoints_3d.shape == (1, 16, 3)
    np.testing.assert_allclose(pr.keypoints_3d[..., :2], pr.keypoints[..., :2])
    from poselab.predict import predict_to
    out = predict_to(p, img, tmp_path, progress=False)
    assert len(json.loads(Path(out["keypoints_3d"]).read_text())[0]["keypoints_3d"]) == 16


def test_onnx_matches_pytorch_on_fixture_crops(tiny_run, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX export checks need onnxruntime: pip install 'poselab[export]'")
    gt = json.loads((COCO / "test_coco.json").read_text())
    boxes = {}
    for a in gt["annotations"]: boxes.setdefault(a["image_id"], []).append(a["bbox"])
    pt = Predictor.from_run(tiny_run)
    assert pt.codec == "dark" and pt.flip_test
    f = export_onnx(tiny_run, tmp_path / "tiny.onnx")
    ox = Predictor.from_onnx(f)
    assert pt.heatmap_stride == ox.heatmap_stride == 2          # the recipe's four-deconvolution head, carried by the file
    for image_id, b in boxes.items():
        img = COCO / f"{image_id:012d}.jpg"
        a, o = pt.predict(img, np.array(b)).keypoints, ox.predict(img, np.array(b)).keypoints
        np.testing.assert_allclose(o, a, atol=1e-4, rtol=0)
    out = main([str(COCO / "000000000785.jpg"), "--onnx", str(f), "--out", str(tmp_path / "ox"), "--quiet"])
    assert out["people"] == 1


def test_from_run_reads_a_slim_checkpoint(tmp_path):
    "A best.pt with only weights, the run settings and the codec on top is enough."
    from poselab.models.core import create_model
    net = create_model("pose_resnet_18", num_joints=17, deconv_filters=[32, 32, 32])
    torch.save({"model": net.state_dict(), "codec": "dark",
                "config": {"task": "topdown", "model": "pose_resnet_18", "model_kwargs": {"deconv_filters": [32, 32, 32]},
                           "input_size": [64, 96], "flip_test": False}}, tmp_path / "best.pt")
    p = Predictor.from_run(tmp_path)
    assert (p.codec, p.flip_test, p.input_size, p.skeleton.name) == ("dark", False, (64, 96), "coco")
    with pytest.raises(FileNotFoundError, match="last.pt not found"):
        Predictor.from_run(tmp_path, "last")
