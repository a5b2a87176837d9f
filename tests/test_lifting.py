"""3D lifting tasks: `lift3d` and `stitched` through the engine and the papermill notebook (tiny settings), known
answers of the normalisation and the metrics, the pose-prior hook, and bad input failing at once."""
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from poselab.data.formats import DatasetLayoutError
from poselab.lifting import (H36M, IN_IDX, Lifter, LiftTask, cached_lifting_stats, lifting_metrics, pairs_from_records,
                             read_detections)
from poselab.data.formats import read_h36m
from poselab.models.core import create_model
from poselab.train import RunConfig, load_run_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests/fixtures/datasets/h36m"


def tiny(data_root, out, **kw) -> RunConfig:
    base = dict(task="lift3d", data_root=str(data_root), synthetic_train=16, synthetic_val=8, output_dir=str(out),
                batch_size=8, epochs=2, limit_batches=3, logger="none", progress=False, model_kwargs={"linear_size": 64})
    return RunConfig(**{**base, **kw})


def h36m_layout(root: Path, cameras: bool = True) -> Path:
    "A Human3.6M layout (the mmpose body3d npz and cameras.pkl) made of the 4-person fixture."
    d = root / "h36m/annotation_body3d"
    (d / "fps50").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"): shutil.copy(FIX / "test_h36m_body3d.npz", d / f"fps50/h36m_{split}.npz")
    if cameras: shutil.copy(FIX / "cameras.pkl", d / "cameras.pkl")
    return root


def test_stats_and_normalisation_known_answers(tmp_path):
    pairs = pairs_from_records(read_h36m(FIX / "test_h36m_body3d.npz", FIX / "cameras.pkl"), "fixture", (0, 0, 1))
    st = cached_lifting_stats(pairs, tmp_path)
    rel = pairs.p3 - pairs.p3[:, :1]
    np.testing.assert_allclose(st["mean_2d"], pairs.p2.mean(0)); np.testing.assert_allclose(st["std_2d"], pairs.p2.std(0))
    np.testing.assert_allclose(st["mean_3d"], rel.mean(0)); np.testing.assert_allclose(st["std_3d"][1:], rel.std(0)[1:])
    np.testing.assert_array_equal(st["std_3d"][0], 1.0)                # the root is constant: passed through
    lf = Lifter(create_model("linear_lifter", linear_size=16)).set_stats(st)
    r = torch.as_tensor(rel, dtype=torch.float32)
    torch.testing.assert_close(lf.decode_3d(lf.encode_3d(r)), r, atol=1e-3, rtol=0)
    x = torch.as_tensor(pairs.p2[:, IN_IDX], dtype=torch.float32)
    z = lf.encode_2d(x).view(4, 16, 2)
    torch.testing.assert_close(z.mean(0), torch.zeros(16, 2), atol=1e-4, rtol=0)   # standardised over the set
    m = lifting_metrics(rel, rel)
    assert m["mpjpe"] == 0 and m["p_mpjpe"] < 1e-9
    c, s = np.cos(0.4), np.sin(0.4)
    m = lifting_metrics(0.9 * rel @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]), rel)
    assert m["p_mpjpe"] < 1e-6 and m["mpjpe"] > 20


def test_lift3d_engine_run_resume_and_tables(data_root, tmp_path):
    opts = {"augment": True, "normalization": "instance"}
    full = train(tiny(data_root, tmp_path, run_name="full", options=opts))
    assert full["steps"] == 6 and {"mpjpe", "p_mpjpe", "n_mpjpe"} <= set(full["final"])
    part = train(tiny(data_root, tmp_path, run_name="split", max_steps=4, options=opts))
    assert part["steps"] == 4
    train(tiny(data_root, tmp_path, run_name="split", resume=True, options=opts))
    a, b = (load_run_checkpoint(tmp_path / f"{n}/last.pt")["model"] for n in ("full", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)                       # augmentation is reproducible on resume
    tables = json.loads((tmp_path / "full/lifting_eval.json").read_text())
    assert set(tables["per_joint"]) == set(H36M.joints) and "average" in tables["per_label"]["mpjpe"]
    assert len(list((data_root / "synthetic/h36m/.cache").glob("lifting_stats_*.npz"))) >= 1


def test_lift3d_on_h36m_layout_and_missing_cameras(tmp_path):
    root = h36m_layout(tmp_path / "data")
    r = train(RunConfig(task="lift3d", dataset="h36m", data_root=str(root), output_dir=str(tmp_path / "out"), batch_size=4,
                        epochs=1, logger="none", progress=False, model_kwargs={"linear_size": 32}))
    assert r["final"]["mpjpe"] > 0
    tables = json.loads((tmp_path / "out/lift3d_h36m/lifting_eval.json").read_text())
    assert "Directions_1" in tables["per_label"]["mpjpe"]
    nocam = h36m_layout(tmp_path / "nocam", cameras=False)
    with pytest.raises(DatasetLayoutError, match="cameras.pkl"):
        train(RunConfig(task="lift3d", dataset="h36m", data_root=str(nocam), output_dir=str(tmp_path / "out2"), logger="none"))
    assert not (tmp_path / "out2").exists()


def test_bad_input_fails_at_once(data_root, tmp_path):
    bad = tmp_path / "preds_15.json"
    bad.write_text(json.dumps([{"image_id": 0, "keypoints": [1.0] * 45, "score": 1.0}]))
    with pytest.raises(ValueError, match="preds_15.json: 15 joints"):
        train(tiny(data_root, tmp_path, run_name="det", options={"detections": str(bad)}))
    assert not (tmp_path / "det").exists()                               # nothing written
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps([{"image": "a.jpg", "joints": [[0, 0]] * 16}, {"image": "b.jpg", "joints": [[0, 0]] * 17}]))
    with pytest.raises(ValueError, match="mixed.json: entries hold different numbers of joints"):
        read_detections(mixed)
    z = dict(np.load(FIX / "test_h36m_body3d.npz"))
    z["S"] = z["S"].copy(); z["S"][2, 5, 0] = np.nan
    root = h36m_layout(tmp_path / "nan")
    np.savez(root / "h36m/annotation_body3d/fps50/h36m_train.npz", **z)
    with pytest.raises(ValueError, match=r"h36m_train.npz: 1 of 4 samples hold NaN or infinite 3D joints \(first: sample 2\)"):
        train(RunConfig(task="lift3d", dataset="h36m", data_root=str(root), output_dir=str(tmp_path / "o"), batch_size=4,
                        logger="none", progress=False))
    with pytest.raises(ValueError, match="prior_weight > 0 needs prior_run"):
        train(tiny(data_root, tmp_path, run_name="p", options={"prior_weight": 0.1}))
    with pytest.raises(ValueError, match="normalization"):
        train(tiny(data_root, tmp_path, run_name="n", options={"normalization": "batch"}))


def test_detected_2d_input(data_root, tmp_path):
    recs = read_h36m(data_root / "synthetic/h36m/val.npz", image_root=data_root / "synthetic")
    rng = np.random.default_rng(0)
    from poselab.skeletons import convert_joints
    preds = [{"image_id": int(r.image_id), "category_id": 1, "score": 1.0,
              "keypoints": np.concatenate([convert_joints(r.joints[:, :2], "h36m", "mpii") + rng.normal(0, 3, (16, 2)),
                                           np.ones((16, 1))], 1).ravel().tolist()} for r in recs]
    det = tmp_path / "predictions.json"; det.write_text(json.dumps(preds))
    gt = train(tiny(data_root, tmp_path, run_name="gt"))
    dt = train(tiny(data_root, tmp_path, run_name="dt", options={"detections": str(det)}))
    assert dt["final"]["mpjpe"] != gt["final"]["mpjpe"] and np.isfinite(dt["final"]["mpjpe"])


def noisy_predictions(records, path: Path, seed: int = 0, drop=()) -> Path:
    "MPII-layout predictions json: ground-truth 2D + 3 px noise per person, without the images in `drop`."
    from poselab.skeletons import convert_joints
    rng = np.random.default_rng(seed)
    preds = [{"image_id": int(r.image_id), "category_id": 1, "score": 1.0,
              "keypoints": np.concatenate([convert_joints(r.joints[:, :2], "h36m", "mpii") + rng.normal(0, 3, (16, 2)),
                                           np.ones((16, 1))], 1).ravel().tolist()}
             for r in records if int(r.image_id) not in drop]
    path.write_text(json.dumps(preds))
    return path


def test_train_on_detected_2d(data_root, tmp_path):
    syn = data_root / "synthetic"
    tr_recs = read_h36m(syn / "h36m/train.npz", image_root=syn)
    va_recs = read_h36m(syn / "h36m/val.npz", image_root=syn)
    tr_det = noisy_predictions(tr_recs, tmp_path / "train_predictions.json")
    va_det = noisy_predictions(va_recs, tmp_path / "val_predictions.json", seed=1)
    cfg = tiny(data_root, tmp_path, run_name="det_train", options={"train_detections": str(tr_det), "detections": str(va_det)})
    task = LiftTask(cfg); task.check_data(); task.datasets()
    gt = pairs_from_records(tr_recs, "train")
    assert len(task.train_pairs) == len(gt)                               # every training person matched
    sel = [H36M.index(n) for n in ("left_knee", "right_wrist", "head_top")]        # joints MPII and H36M share
    err = np.linalg.norm(task.train_pairs.p2[:, sel] - gt.p2[:, sel], axis=-1)
    assert 0.5 < err.mean() < 10                                          # the detections (3 px noise), not ground truth
    np.testing.assert_array_equal(task.train_pairs.p3, gt.p3)
    det = train(cfg)
    ref = train(tiny(data_root, tmp_path, run_name="gt_train", options={"detections": str(va_det)}))
    assert np.isfinite(det["final"]["mpjpe"]) and det["final"]["mpjpe"] != ref["final"]["mpjpe"]
    st = load_run_checkpoint(tmp_path / "det_train/last.pt")["model"]      # 2D statistics of the detections
    np.testing.assert_allclose(st["norm_2d.mean"].numpy(), task.train_pairs.p2[:, IN_IDX].reshape(len(gt), -1).mean(0),
                               rtol=1e-5)


def test_train_detections_bad_input(data_root, tmp_path):
    syn = data_root / "synthetic"
    recs = read_h36m(syn / "h36m/train.npz", image_root=syn)
    ids = sorted({int(r.image_id) for r in recs})
    part = noisy_predictions(recs, tmp_path / "partial.json", drop=ids[:2])
    people = sum(int(r.image_id) in ids[:2] for r in recs)
    with pytest.raises(ValueError, match=rf"partial.json: the predictions do not cover the training samples: {people} of "
                                         rf"{len(recs)} people have no detection .*missing image ids \[{ids[0]}, {ids[1]}\]"):
        train(tiny(data_root, tmp_path, run_name="partial", options={"train_detections": str(part)}))
    assert not (tmp_path / "partial").exists()                            # nothing written
    bad = tmp_path / "train_15.json"
    bad.write_text(json.dumps([{"image_id": 0, "keypoints": [1.0] * 45, "score": 1.0}]))
    with pytest.raises(ValueError, match="train_15.json: 15 joints"):
        train(tiny(data_root, tmp_path, run_name="bad", options={"train_detections": str(bad)}))
    with pytest.raises(FileNotFoundError, match="option `train_detections`"):
        train(tiny(data_root, tmp_path, run_name="nofile", options={"train_detections": str(tmp_path / "none.json")}))
    full = noisy_predictions(recs, tmp_path / "full.json")
    with pytest.raises(ValueError, match="augment=True"):
        train(tiny(data_root, tmp_path, run_name="aug", options={"train_detections": str(full), "augment": True}))
    assert not any((tmp_path / n).exists() for n in ("bad", "nofile", "aug"))


def test_fused_adam_is_the_recipe(data_root, tmp_path):
    cfg = tiny(data_root, tmp_path, run_name="opt")
    task = LiftTask(cfg); task.datasets()
    model = task.build_model()
    opt, sched = task.build_optimizer(model, 10)
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["fused"] and opt.param_groups[0]["lr"] == cfg.lr
    ref = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ref_sched = torch.optim.lr_scheduler.LambdaLR(ref, sched.lr_lambdas[0])
    for _ in range(5): opt.step(); ref.step(); sched.step(); ref_sched.step()   # no gradients: lr only
    assert opt.param_groups[0]["lr"] == ref.param_groups[0]["lr"] < cfg.lr   # the recipe's (cosine) schedule
    a = create_model("linear_lifter", linear_size=16); b = create_model("linear_lifter", linear_size=16)
    b.load_state_dict(a.state_dict())
    oa, ob = torch.optim.Adam(a.parameters(), lr=1e-3, fused=True), torch.optim.Adam(b.parameters(), lr=1e-3)
    x, y = torch.randn(8, 32), torch.randn(8, 48)
    for m, o in ((a, oa), (b, ob)):
        torch.manual_seed(0)
        for _ in range(3): o.zero_grad(); torch.nn.functional.mse_loss(m(x), y).backward(); o.step()
    for k, v in a.state_dict().items(): torch.testing.assert_close(v, b.state_dict()[k], atol=1e-5, rtol=1e-4)


def test_pose_prior_hook(data_root, tmp_path, monkeypatch):
    calls = {"load": 0, "loss": 0}

    class Critic(torch.nn.Module):
        def forward(self, poses):
            assert poses.shape[1:] == (17, 3)
            assert torch.all(poses[:, 0] == 0)                           # root-relative H36M-17, mm
            return -poses.norm(dim=-1).mean(-1)

    def load_pose_prior(path, device):
        calls["load"] += 1
        assert Path(path) == tmp_path / "gan_run"
        return Critic().to(device).requires_grad_(False)

    def adversarial_prior_loss(prior, poses):
        calls["loss"] += 1
        return -prior(poses).mean()

    fake = types.ModuleType("poselab.gan")
    fake.load_pose_prior, fake.adversarial_prior_loss = load_pose_prior, adversarial_prior_loss
    monkeypatch.setitem(sys.modules, "poselab.gan", fake)
    (tmp_path / "gan_run").mkdir()
    torch.manual_seed(0)
    base = train(tiny(data_root, tmp_path, run_name="base"))
    pri = train(tiny(data_root, tmp_path, run_name="prior", options={"prior_run": str(tmp_path / "gan_run"),
                                                                       "prior_weight": 1.0}))
    assert calls == {"load": 1, "loss": 6}
    assert pri["history"]["loss"][0] > base["history"]["loss"][0]        # the prior's term joins the loss


def hourglass_and_lifter(data_root, out):
    hg = RunConfig(task="hourglass", data_root=str(data_root), synthetic_train=16, synthetic_val=8, output_dir=str(out),
                   input_size=64, epochs=1, limit_batches=2, batch_size=4, limit_val=4, workers=0, logger="none",
                   progress=False, flip_test=False, model_kwargs={"num_stacks": 1, "num_feats": 16}, run_name="hg")
    train(hg)
    lf = tiny(data_root, out, run_name="lifter", model_kwargs={"linear_size": 32})
    train(lf)
    return hg.run_dir, lf.run_dir


def test_stitched_freeze_and_end_to_end(data_root, tmp_path):
    hg, lf = hourglass_and_lifter(data_root, tmp_path)
    hg_w = load_run_checkpoint(hg / "best.pt")["model"]
    res = {}
    for freeze in (True, False):
        cfg = RunConfig(task="stitched", data_root=str(data_root), synthetic_train=16, synthetic_val=8, input_size=64,
                        output_dir=str(tmp_path), run_name=f"st_{freeze}", epochs=1, limit_batches=2, batch_size=4,
                        limit_val=4, logger="none", progress=False,
                        options={"hourglass_run": str(hg), "lifter_run": str(lf), "freeze": freeze, "weight_2d": 0.1})
        res[freeze] = train(cfg)
        w = load_run_checkpoint(tmp_path / f"st_{freeze}/last.pt")["model"]
        same = all(torch.equal(w[f"hourglass.{k}"], v) for k, v in hg_w.items())
        assert same == freeze                                             # frozen: the hourglass is untouched
        assert {"mpjpe", "p_mpjpe"} <= set(res[freeze]["final"])
    with pytest.raises(ValueError, match="input_size"):
        train(RunConfig(task="stitched", data_root=str(data_root), output_dir=str(tmp_path / "x"), logger="none",
                        options={"hourglass_run": str(hg), "lifter_run": str(lf)}))
    with pytest.raises(ValueError, match="lifter_run is required"):
        train(RunConfig(task="stitched", data_root=str(data_root), output_dir=str(tmp_path / "y"), input_size=64,
                        logger="none", options={"hourglass_run": str(hg)}))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.parametrize("task", ["lift3d", "stitched"])
def test_papermill_train_notebook(data_root, tmp_path, task):
    pytest.importorskip("papermill")
    opts = "{augment: true}"
    extra = ["-p", "model_kwargs", "{linear_size: 32}"]
    if task == "stitched":
        hg, lf = hourglass_and_lifter(data_root, tmp_path / "init")
        opts = f"{{hourglass_run: '{hg}', lifter_run: '{lf}'}}"
        extra = ["-p", "input_size", "64"]
    out = tmp_path / f"{task}.ipynb"
    args = [sys.executable, "-m", "papermill", str(ROOT / "nbs/train.ipynb"), str(out), "-p", "task", task,
            "-p", "epochs", "1", "-p", "limit_batches", "2", "-p", "batch_size", "4", "-p", "limit_val", "4",
            "-p", "data_root", str(data_root), "-p", "synthetic_train", "16", "-p", "synthetic_val", "8",
            "-p", "output_dir", str(tmp_path / "runs"), "-p", "logger", "none", "-p", "options", opts,
            "-k", "python3", *extra]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / f"runs/{task}_synthetic/metrics.json").read_text())
    assert m["steps"] == 2 and m["final"]["mpjpe"] > 0 and m["final"]["p_mpjpe"] > 0


def test_predictor_lifter_matches_the_runs_evaluation(data_root, tmp_path):
    "Ground-truth 2D (MPII layout) through the predictor's lifter gives the 3D of the lift3d run's own evaluation."
    from poselab.predict import Prediction, Predictor
    from poselab.skeletons import convert_joints
    from poselab.train import _run_model
    run = tiny(data_root, tmp_path, run_name="lift", options={"normalization": "dataset"})
    train(run)
    recs = read_h36m(data_root / "synthetic/h36m/val.npz", image_root=data_root / "synthetic")
    gt = np.stack([np.concatenate([convert_joints(r.joints[:, :2], "h36m", "mpii"), np.ones((16, 1))], 1) for r in recs])
    det = tmp_path / "gt_mpii.json"
    det.write_text(json.dumps([{"image_id": int(r.image_id), "category_id": 1, "score": 1.0, "keypoints": k.ravel().tolist()}
                               for r, k in zip(recs, gt)]))
    cfg, task, lifter = _run_model(run.run_dir)
    task.options["detections"], cfg.output_dir = str(det), str(tmp_path / "unwritten")
    _, val = task.datasets()
    _, extra = task.evaluate(lifter, val, torch.device("cpu"))
    assert len(val) == len(recs) and task.missing_detections == 0
    p = Predictor("hg_s1_b1", skeleton="mpii", lifter=run.run_dir)
    pr = p.lift(Prediction(gt.astype(np.float32), np.ones(len(gt), np.float32), np.zeros((len(gt), 4), np.float32)))
    np.testing.assert_allclose(pr.keypoints_3d, extra["pred"], atol=1e-4)
    assert np.abs(extra["pred"]).max() > 1                                  # a real pose, not zeros
    with pytest.raises(ValueError, match=r"crowdpose joints cannot give the lifter's H36M joints \['pelvis', 'spine', 'thorax'\]"):
        Predictor("hg_s1_b1", skeleton="crowdpose", lifter=run.run_dir)
    with pytest.raises(ValueError, match="depth hourglass"):
        Predictor("hourglass_depth", lifter=run.run_dir)


def test_predict_cli_with_lifter_writes_3d(data_root, tmp_path):
    "A tiny top-down run (COCO joints) chained with a tiny lifter on synthetic images: keypoints_3d per person, pictures."
    lift = tiny(data_root, tmp_path, run_name="lift")
    train(lift)
    td = RunConfig(data_root=str(data_root), synthetic_train=16, synthetic_val=8, output_dir=str(tmp_path), run_name="td",
                   input_size=(64, 64), batch_size=4, epochs=1, limit_batches=1, limit_val=2, workers=0, logger="none",
                   progress=False, log_images=False, flip_test=False)
    train(td)
    imgs = tmp_path / "imgs"; imgs.mkdir()
    for f in sorted((data_root / "synthetic/images/val").glob("*.jpg"))[:2]: shutil.copy(f, imgs / f.name)
    out = tmp_path / "pred"
    r = subprocess.run([sys.executable, "-m", "poselab.predict", str(imgs), "--run", str(td.run_dir), "--lifter",
                        str(lift.run_dir), "--out", str(out), "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "keypoints.json").read_text())
    assert len(res) == 2 and all(len(p["keypoints"]) == 51 and np.shape(p["keypoints_3d"]) == (17, 3) for p in res)
    assert all(p["keypoints_3d"][0] == [0.0, 0.0, 0.0] for p in res)        # root-relative: the pelvis at 0
    assert sorted(p.name for p in (out / "lifted").glob("*.png")) == sorted(f.stem + ".png" for f in imgs.iterdir())
    bad = subprocess.run([sys.executable, "-m", "poselab.predict", str(imgs), "--run", str(td.run_dir), "--lifter",
                          str(td.run_dir), "--out", str(tmp_path / "bad")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and "not a lifter" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
