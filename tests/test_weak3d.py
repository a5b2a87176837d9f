"""The weak3d task end to end: the three stages chained through the papermill training notebook, refusal of a
wrong or missing previous-stage checkpoint and of 3D files with NaN joints (before anything is written), resume,
and the ResNet depth-map network's loss (tiny synthetic settings)."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from poselab.train import RunConfig, load_run_checkpoint, train
from poselab.weak3d import NonFinite3DError, run_chain, stage_table

ROOT = Path(__file__).resolve().parents[1]
HG = {"num_stacks": 1, "num_modules": 1, "num_feats": 32, "num_reg_modules": 1}


def tiny(data_root, out, **kw) -> RunConfig:
    base = dict(task="weak3d", data_root=str(data_root), synthetic_train=16, synthetic_val=8, output_dir=str(out),
                input_size=64, model_kwargs=HG, batch_size=4, epochs=1, limit_batches=2, limit_val=4, workers=0,
                logger="none", progress=False, log_images=False, flip_test=False)
    return RunConfig.from_dict({**base, **kw})


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_papermill_stages_1_2_3(data_root, tmp_path):
    pytest.importorskip("papermill")
    runs = tmp_path / "runs"
    prev, before = None, {}
    for stage in (1, 2, 3):
        opts = f"{{stage: {stage}}}" if prev is None else f"{{stage: {stage}, init: {prev}}}"
        args = [sys.executable, "-m", "papermill", str(ROOT / "nbs/train.ipynb"), str(tmp_path / f"stage{stage}.ipynb"),
                "-p", "task", "weak3d", "-p", "options", opts, "-p", "run_name", f"stage{stage}",
                "-p", "model_kwargs", json.dumps(HG), "-p", "epochs", "1", "-p", "limit_batches", "2",
                "-p", "batch_size", "4", "-p", "limit_val", "4", "-p", "data_root", str(data_root),
                "-p", "synthetic_train", "16", "-p", "synthetic_val", "8", "-p", "output_dir", str(runs),
                "-p", "workers", "0", "-p", "input_size", "64", "-p", "logger", "none", "-k", "python3"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-3000:]
        run = runs / f"stage{stage}"
        m = json.loads((run / "metrics.json").read_text())
        assert m["task"] == "weak3d" and m["metric"] == "mpjpe" and m["steps"] == 2
        assert {"mpjpe", "p_mpjpe", "mpjpe_bone", "pck3d", "auc3d", "PCKh"} <= set(m["final"])
        assert 0 < m["final"]["p_mpjpe"] and 0 < m["final"]["mpjpe"]
        assert (run / "report_joint_errors.png").is_file() and (run / "report_stages.png").is_file()
        if prev is not None:
            assert digest(Path(prev) / "last.pt") == before[prev]          # the previous stage is left untouched
        prev = str(run); before[prev] = digest(run / "last.pt")
    chain = run_chain(runs / "stage3")
    assert [p.name for p in chain] == ["stage1", "stage2", "stage3"]
    assert [row["stage"] for row in stage_table(chain)] == [1, 2, 3]


def test_stage_chain_is_checked_before_anything_is_written(data_root, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="stage=2 continues the stage-1 network: pass init="):
        tiny(data_root, out, run_name="s2", options={"stage": 2})
    with pytest.raises(ValueError, match="stage=3 continues the stage-2 network"):
        tiny(data_root, out, stage=3)
    with pytest.raises(FileNotFoundError, match="pass the stage-1 run directory"):
        train(tiny(data_root, out, run_name="s2", options={"stage": 2, "init": str(tmp_path / "nowhere")}))
    assert not out.exists()
    s1 = train(tiny(data_root, tmp_path / "runs", run_name="s1"))["run_dir"]
    with pytest.raises(ValueError, match="is a stage-1 run; stage 3 continues a stage-2 run"):
        train(tiny(data_root, out, run_name="s3", options={"stage": 3, "init": s1}))
    with pytest.raises(ValueError, match="this run's own folder"):
        train(tiny(data_root, tmp_path / "runs", run_name="s1", options={"stage": 2, "init": s1}))
    with pytest.raises(ValueError, match="holds a 'hourglass_depth' network"):
        train(tiny(data_root, out, run_name="s2", model="resnet_50_3d", model_kwargs={}, options={"stage": 2, "init": s1}))
    assert not out.exists()


def test_nan_in_a_3d_file_stops_the_run_naming_the_file(data_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_root / "synthetic", root / "synthetic")
    p = root / "synthetic/h36m/train.npz"
    z = dict(np.load(p))
    z["joints_3d"] = z["joints_3d"].copy(); z["joints_3d"][1, 3, 2] = np.nan
    np.savez(p, **z)
    with pytest.raises(NonFinite3DError, match=r"h36m/train\.npz: the 3D joints of 1 of .* person 1 .*'right_ankle'"):
        train(tiny(root, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_resume_mid_epoch_is_bit_identical(data_root, tmp_path):
    kw = dict(epochs=2, limit_batches=3, options={"stage": 1})
    full = train(tiny(data_root, tmp_path, run_name="full", **kw))
    s2 = dict(kw, options={"stage": 2, "init": full["run_dir"], "ratio_3d": 0.25})
    a = train(tiny(data_root, tmp_path, run_name="a", **s2))
    train(tiny(data_root, tmp_path, run_name="b", max_steps=4, **s2))
    b = train(tiny(data_root, tmp_path, run_name="b", resume=True, **s2))
    assert a["steps"] == b["steps"] == 6 and a["history"]["loss"] == b["history"]["loss"]
    wa, wb = (load_run_checkpoint(tmp_path / n / "last.pt")["model"] for n in ("a", "b"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resnet_depth_maps_train_all_three_losses(data_root, tmp_path):
    from poselab.train import get_task
    cfg = tiny(data_root, tmp_path, model="resnet_50_3d", model_kwargs={}, options={"stage": 3, "init": "unused"})
    task = get_task("weak3d")[1](cfg)
    train_ds, val = task.datasets()
    model = task.build_model()
    seeds = torch.utils.data.default_collate([{"index": i, "seed": i} for i in range(4)])
    task.step = task.epoch = 0
    batch = task.mixed_batch(seeds)
    assert int(batch["is_3d"].sum()) == 2                              # ratio_3d 0.5 of a batch of 4
    loss = task.loss(model, seeds, "cpu")
    loss.backward()
    assert torch.isfinite(loss) and model.depth.weight.grad.abs().sum() > 0
    metrics, _ = task.evaluate(model.eval(), val, torch.device("cpu"))
    assert np.isfinite(metrics["mpjpe"]) and "PCKh" in metrics
