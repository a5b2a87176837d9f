"""The 3D-pose GAN task end to end: the papermill training notebook writes the quality numbers, resume is
bit-identical, the run serves as a pose prior, and bad data stop with errors that name the file."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from poselab.data.formats import DatasetLayoutError
from poselab.gan import (PoseDataError, adversarial_prior_loss, load_pose_prior, pose_plausibility)
from poselab.train import RunConfig, load_run_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/fixtures/datasets/h36m/test_h36m_body3d.npz"
TINY = dict(task="gan3d", model_kwargs=dict(noise_dim=8, linear_size=32, num_stages=1), batch_size=16,
            epochs=2, limit_batches=3, logger="none", progress=False, options=dict(n_critic=2, eval_samples=200))
QUALITY = ("bone_w1", "bone_w1_max", "knee_hyperext", "elbow_hyperext", "intersection", "implausible", "coverage_mm",
           "precision_mm", "nn_mpjpe")


def tiny(out, **kw) -> RunConfig:
    return RunConfig.from_dict({**TINY, "dataset": "mocap", "output_dir": str(out), **kw})


def test_papermill_gan3d_writes_quality_numbers_and_serves_as_prior(tmp_path):
    pytest.importorskip("papermill")
    out = tmp_path / "gan3d.ipynb"
    args = [sys.executable, "-m", "papermill", str(ROOT / "nbs/train.ipynb"), str(out), "-p", "task", "gan3d",
            "-p", "dataset", "mocap", "-p", "epochs", "1", "-p", "limit_batches", "6", "-p", "batch_size", "16",
            "-p", "model_kwargs", "{noise_dim: 8, linear_size: 32, num_stages: 1}",
            "-p", "options", "{n_critic: 2, eval_samples: 200}", "-p", "output_dir", str(tmp_path / "runs"),
            "-p", "workers", "0", "-p", "logger", "tensorboard", "-k", "python3"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "runs/gan3d_mocap"
    m = json.loads((run / "metrics.json").read_text())
    assert m["steps"] == 6 and m["metric"] == "nn_mpjpe"
    f = m["final"]
    for k in QUALITY:
        assert np.isfinite(f[k]) and np.isfinite(f[f"gaussian_{k}"]), k
    assert 0 <= f["plausibility_auc"] <= 1 and f["real_precision_mm"] > 0
    assert list((run / "logs").glob("events.out.tfevents.*"))                # scalars and the sample grid
    # the run as a prior: frozen, (B, 17, 3) mm -> (B,), differentiable in the poses, calibrated to [0, 1]
    prior = load_pose_prior(run)
    x = (torch.randn(5, 17, 3) * 200).requires_grad_(True)
    s = prior(x)
    assert s.shape == (5,) and not prior.training and not any(p.requires_grad for p in prior.parameters())
    adversarial_prior_loss(prior, x).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    p = pose_plausibility(x.detach().numpy(), prior)
    assert p.shape == (5,) and ((p >= 0) & (p <= 1)).all()
    assert torch.equal(load_pose_prior(run / "last.pt")(x.detach()), s.detach())


def test_resume_mid_run_is_bit_identical(tmp_path):
    full = train(tiny(tmp_path, run_name="full"))
    assert full["steps"] == 6
    part = train(tiny(tmp_path, run_name="split", max_steps=4))          # stops inside a critic/generator cycle
    assert part["steps"] == 4
    train(tiny(tmp_path, run_name="split", resume=True))
    a, b = (load_run_checkpoint(tmp_path / f"{n}/last.pt")["model"] for n in ("full", "split"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = (json.loads((tmp_path / f"{n}/metrics.json").read_text())["history"]["loss"] for n in ("full", "split"))
    assert ha == hb


def _h36m_root(tmp_path, train_fn=None) -> Path:
    d = tmp_path / "data/h36m/annotation_body3d/fps50"
    d.mkdir(parents=True)
    shutil.copy(FIXTURE, d / "h36m_test.npz")
    z = dict(np.load(FIXTURE))
    if train_fn: z = train_fn(z)
    np.savez(d / "h36m_train.npz", **z)
    return tmp_path / "data"


def test_h36m_npz_trains(tmp_path):
    root = _h36m_root(tmp_path)
    r = train(tiny(tmp_path / "out", dataset="h36m", data_root=str(root), batch_size=2, epochs=1, limit_batches=3))
    assert r["steps"] == 2 and np.isfinite(r["final"]["coverage_mm"])


def test_bad_data_names_the_file(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"h36m_train\.npz"):                # missing files
        train(tiny(tmp_path / "out", dataset="h36m", data_root=str(tmp_path / "none")))

    def nan(z): z["S"][2, 5, 1] = np.nan; return z
    root = _h36m_root(tmp_path / "nan", nan)
    with pytest.raises(PoseDataError, match=r"h36m_train\.npz: 1 of 4 poses hold NaN"):
        train(tiny(tmp_path / "out", dataset="h36m", data_root=str(root)))

    def empty(z): return {k: v[:0] for k, v in z.items()}
    root = _h36m_root(tmp_path / "empty", empty)
    with pytest.raises(PoseDataError, match=r"h36m_train\.npz: no poses \(empty dataset\)"):
        train(tiny(tmp_path / "out", dataset="h36m", data_root=str(root)))

    def coco_order(z): z["S"] = z["S"][:, ::-1].copy(); z["part"] = z["part"][:, ::-1].copy(); return z
    root = _h36m_root(tmp_path / "order", coco_order)
    with pytest.raises(PoseDataError, match=r"h36m_train\.npz: the joints are not in H36M-17 order"):
        train(tiny(tmp_path / "out", dataset="h36m", data_root=str(root)))

    with pytest.raises(ValueError, match="valid options: n_critic"):
        tiny(tmp_path, options={"ncritic": 3})
    with pytest.raises(ValueError, match="n_critic=0 must be >= 1"):
        train(tiny(tmp_path / "out", options={"n_critic": 0}))
    with pytest.raises(ValueError, match="expected a gan3d run"):
        load_pose_prior(_topdown_ckpt(tmp_path))


def _topdown_ckpt(tmp_path) -> Path:
    p = tmp_path / "other.pt"
    torch.save({"config": {"task": "topdown"}, "model": {}}, p)
    return p


def test_synthetic_world_poses(data_root):
    "The synthetic world's H36M split (camera frame) passes the checks; canonical poses are frame-free."
    from poselab.gan import GAN3DTask
    task = GAN3DTask(RunConfig.from_dict({**TINY, "dataset": "synthetic", "data_root": str(data_root),
                                          "synthetic_train": 16, "synthetic_val": 8}))
    tr, ho = task.load_poses()
    assert tr.shape[1:] == (17, 3) and len(tr) >= 16 and len(ho) >= 8
    assert np.allclose(tr[:, 0], 0) and (tr[:, 4, 0] - tr[:, 1, 0] > 0).all()
