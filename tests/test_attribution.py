"""PoseIG attribution: the papermill notebook on a tiny trained run, store resume, bad samples and settings, and the
completeness of straight-line integrated gradients."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from poselab.attribution import (AttributionStore, HeatmapTarget, StoreError, attribute_samples,
                                 load_attribution_model, pose_ig, run_attribution)
from poselab.train import RunConfig, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(data_root, tmp_path_factory) -> Path:
    "A top-down run trained for 4 steps on the tiny synthetic world (64×64 crops)."
    out = tmp_path_factory.mktemp("attr_runs")
    train(RunConfig(data_root=str(data_root), synthetic_train=16, synthetic_val=8, output_dir=str(out), run_name="tiny",
                    input_size=(64, 64), batch_size=4, epochs=1, limit_batches=4, limit_val=4, workers=0, logger="none",
                    progress=False, log_images=False, flip_test=False))
    return out / "tiny"


def test_papermill_attribution_notebook_and_resume(run_dir, tmp_path):
    pytest.importorskip("papermill")
    store = tmp_path / "store"
    args = [sys.executable, "-m", "papermill", str(ROOT / "nbs/attribution.ipynb"), str(tmp_path / "out.ipynb"),
            "-p", "run_dir", str(run_dir), "-p", "samples", "2", "-p", "steps", "4", "-p", "batch_size", "8",
            "-p", "store_dir", str(store), "-p", "progress", "False", "-y", "joints: [left_wrist, 0]", "-k", "python3"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    idx = json.loads((store / "index.json").read_text())
    assert sorted(idx) == ["0", "1"]
    assert all(len(idx[k][n]) == 2 for k in idx for n in ("DI", "FI", "LI", "weight"))
    assert all(len(v["EPE"]) == 2 for v in json.loads((store / "epe.json").read_text()).values())
    ri = json.loads((store / "ri.json").read_text())
    assert np.array(ri["0"], dtype=float).shape == (2, 17)           # selected joints × all joints
    assert json.loads((store / "meta.json").read_text())["joints"] == ["left_wrist", "nose"]
    with np.load(store / "maps/0000000.npz") as z:
        assert z["maps"].dtype == np.float16 and z["maps"].shape == (2, 64, 64)
        assert np.abs(z["maps"]).max() == 1.0
    assert "index_table" not in (tmp_path / "out.ipynb").read_text() or "DI" in (tmp_path / "out.ipynb").read_text()

    # a restarted analysis computes only what is missing
    before = (store / "maps/0000000.npz").stat().st_mtime_ns
    res = run_attribution(run_dir, samples=[0, 1, 3], joints=["left_wrist", 0], steps=4, batch_size=8,
                          store_dir=store, progress=False, figures=False)
    assert res.store.done == [0, 1, 3]
    assert (store / "maps/0000000.npz").stat().st_mtime_ns == before
    # other settings in the same store are refused, naming them
    with pytest.raises(ValueError, match="steps"):
        run_attribution(run_dir, samples=2, joints=["left_wrist", 0], steps=8, store_dir=store, figures=False)


def test_bad_samples_and_settings(run_dir, tmp_path):
    with pytest.raises(IndexError, match=r"samples \[999\] are outside the dataset \(valid: 0\.\.\d+\)"):
        run_attribution(run_dir, samples=[999], steps=2, store_dir=tmp_path / "s1", progress=False, figures=False)
    with pytest.raises(ValueError, match="'left_paw' is not a joint of coco"):
        run_attribution(run_dir, samples=1, joints=["left_paw"], store_dir=tmp_path / "s2", figures=False)
    with pytest.raises(FileNotFoundError, match="last.pt"):
        load_attribution_model(tmp_path, which="last")
    store = AttributionStore(tmp_path / "s3")
    with pytest.raises(StoreError, match="sample 5 is not in the attribution store"):
        store.load(5)
    (tmp_path / "s3/index.json").write_text("{broken")
    with pytest.raises(StoreError, match="index.json is not valid json"):
        AttributionStore(tmp_path / "s3")


def test_store_keys_are_dataset_indices(run_dir, tmp_path):
    cfg, task, model = load_attribution_model(run_dir)
    cfg.limit_val = None                                  # every validation person, as run_attribution reads them
    _, val = task.datasets()
    val.return_mask = True
    store = attribute_samples(model, val, [5, 2], AttributionStore(tmp_path / "s"), steps=2, joints=[0],
                              progress=False)
    assert store.done == [2, 5]
    s5 = store.load(5)
    gt5 = val[5]["target"][None]
    from poselab.codecs import soft_argmax_2d
    np.testing.assert_allclose(s5["gt"][0], soft_argmax_2d(gt5, 10.0)[0, 0].numpy(), atol=1e-4)   # sample 5's own GT
    assert np.isfinite(s5["FI"][0]) and s5["FI"][0] > 0                                        # its own mask


def test_completeness_straight_line():
    "The pixel sum of a straight-line IG map equals L(x) − L(0) within 1 % at 200 steps."
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.AvgPool2d(4), nn.Conv2d(8, 3, 3, padding=1)).eval()
    with torch.no_grad(): net[3].weight.mul_(6)
    x = torch.randn(1, 3, 32, 32)
    info = {"joints": torch.tensor([[[3.0, 4.0], [1.0, 6.0], [6.0, 6.0]]])}
    t = HeatmapTarget(gt="point", beta=2.0)
    G = pose_ig(net, x, t, info, steps=200, path="zero", batch_size=64)
    with torch.no_grad(): d = t(net, x, info) - t(net, torch.zeros_like(x), info)
    assert d.abs().min() > 1e-3
    assert ((G.sum((-2, -1)) - d).abs() / d.abs()).max() < 0.01
