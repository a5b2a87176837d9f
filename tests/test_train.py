"""Training engine: reproducible resume, DDP equivalence, non-finite loss handling, config validation and the
papermill entry notebook for every task (tiny synthetic settings)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from poselab.data.formats import DatasetLayoutError
from poselab.train import NonFiniteLossError, RunConfig, load_run_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]


def tiny(data_root, out, **kw) -> RunConfig:
    base = dict(data_root=str(data_root), synthetic_train=16, synthetic_val=8, output_dir=str(out), input_size=(64, 64),
                batch_size=4, epochs=2, limit_batches=3, limit_val=4, workers=0, logger="none", progress=False,
                log_images=False, flip_test=False)
    return RunConfig(**{**base, **kw})


def weights(path) -> dict:
    return load_run_checkpoint(path)["model"]


def test_bad_parameters_fail_fast_with_choices(tmp_path):
    with pytest.raises(ValueError, match="valid choices: bottomup, classification, gan3d, hourglass, lift3d, stitched, topdown, weak3d"):
        RunConfig(task="pose")
    with pytest.raises(ValueError, match="synthetic, coco, mpii"):
        RunConfig(dataset="h36m")
    with pytest.raises(ValueError, match="pose_resnet_18"):
        RunConfig(model="resnet_18")
    with pytest.raises(ValueError, match="adam, adamw, rmsprop, sgd"):
        RunConfig(optimizer="lamb")
    with pytest.raises(ValueError, match="valid settings"):
        RunConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="multiples of 32"):
        RunConfig(input_size=(50, 64))
    # a missing dataset stops before any model or data is built, showing the layout and where to get it
    with pytest.raises(DatasetLayoutError, match=r"(?s)annotations/person_keypoints_.*cocodataset.org"):
        train(RunConfig(dataset="coco", data_root=str(tmp_path), output_dir=str(tmp_path / "out"), logger="none"))
    assert not (tmp_path / "out").exists()


def test_resume_mid_epoch_is_bit_identical(data_root, tmp_path):
    full = train(tiny(data_root, tmp_path, run_name="full"))
    assert full["steps"] == 6
    # stop inside the second epoch (as a kill after a checkpoint would), then resume
    part = train(tiny(data_root, tmp_path, run_name="split", max_steps=4))
    assert part["steps"] == 4
    st = load_run_checkpoint(tmp_path / "split/last.pt")
    assert (st["epoch"], st["batch_in_epoch"], st["step"]) == (1, 1, 4)
    train(tiny(data_root, tmp_path, run_name="split", resume=True))
    a, b = weights(tmp_path / "full/last.pt"), weights(tmp_path / "split/last.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ha = json.loads((tmp_path / "full/metrics.json").read_text())["history"]["loss"]
    hb = json.loads((tmp_path / "split/metrics.json").read_text())["history"]["loss"]
    assert ha == hb


def test_nan_loss_stops_and_keeps_last_checkpoint(data_root, tmp_path):
    from poselab.models.core import create_model
    model = create_model("pose_resnet_18", num_joints=17, deconv_filters=(128, 128, 128))
    calls = {"n": 0}

    def poison(mod, inp, out):
        if not mod.training: return out
        calls["n"] += 1
        return out * float("nan") if calls["n"] == 5 else out
    model.register_forward_hook(poison)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 5 \(batch 2 of the epoch\)"):
        train(tiny(data_root, tmp_path, run_name="nan"), model=model)
    st = load_run_checkpoint(tmp_path / "nan/last.pt")
    assert (st["epoch"], st["step"]) == (1, 3)
    assert all(torch.isfinite(v).all() for v in st["model"].values() if v.is_floating_point())
    assert [p.name for p in (tmp_path / "nan").glob(".*.tmp")] == []


@pytest.mark.slow
def test_torchrun_two_processes_match_one(data_root, tmp_path):
    "2 gloo processes × 2 samples give the weights of 1 process × 4 samples (batch norm frozen: see the chapter)."
    common = tiny(data_root, tmp_path, epochs=1, limit_batches=2, freeze_bn=True)
    paths = {}
    for n in (1, 2):
        cfg = RunConfig.from_dict({**common.to_dict(), "run_name": f"ddp{n}"})
        y = tmp_path / f"ddp{n}.yaml"; cfg.to_yaml(y)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                            "-m", "poselab.train", "--config", str(y)], env=env, capture_output=True, text=True,
                           timeout=600, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        paths[n] = tmp_path / f"ddp{n}/last.pt"
    a, b = weights(paths[1]), weights(paths[2])
    for k in a:
        if a[k].is_floating_point(): torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5, msg=k)
    assert load_run_checkpoint(paths[2])["step"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("task,extra", [
    ("topdown", []),
    ("hourglass", ["-p", "input_size", "64", "-y", "model_kwargs: {num_stacks: 1, depth: 2}"]),
    ("bottomup", ["-p", "input_size", "128", "-p", "batch_size", "2"]),
    ("classification", ["-p", "input_size", "64", "-p", "model", "hrnet_w18_small_cls"]),
])
def test_papermill_train_notebook(data_root, tmp_path, task, extra):
    pm = pytest.importorskip("papermill")
    out = tmp_path / f"{task}.ipynb"
    args = [sys.executable, "-m", "papermill", str(ROOT / "nbs/train.ipynb"), str(out), "-p", "task", task,
            "-p", "epochs", "1", "-p", "limit_batches", "2", "-p", "batch_size", "4", "-p", "limit_val", "4",
            "-p", "data_root", str(data_root), "-p", "synthetic_train", "16", "-p", "synthetic_val", "8",
            "-p", "output_dir", str(tmp_path / "runs"), "-p", "workers", "0", "-p", "input_size", "64",
            "-p", "logger", "none", "-k", "python3", *extra]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / f"runs/{task}_synthetic/metrics.json").read_text())
    assert m["steps"] == 2 and m["final"] is not None
