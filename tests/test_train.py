"""Training engine: reproducible resume, DDP equivalence, non-finite loss handling, config validation and the
papermill entry notebook for every task (tiny synthetic settings)."""
import json
import os
import re
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
    if task == "topdown":                       # what the main job's notebook shows
        import nbformat
        nb = nbformat.read(out, as_version=4)
        outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        text = "".join(o.get("text", "") for o in outs if o.output_type == "stream")
        assert [o for o in outs if o.output_type == "stream" and o.name == "stderr"] == [], "warning output"
        assert "Warning" not in text and "widget" not in json.dumps([o.get("data", {}) for o in outs])
        assert "train: 2/2 steps (100%)" in text and "images/s" in text and "eta" in text
        assert "median joint error" in text and "checkpoints: best.pt" in text and "machine:" in text
        for k in ("wall_s", "train_images_per_s", "machine", "val_images", "skipped_images", "checkpoint_bytes"):
            assert k in m, k
        assert "joint_err_pct" in m["final"]
        assert m["checkpoint_bytes"]["best.pt"] <= 1.2 * m["weights_fp32_bytes"] < m["checkpoint_bytes"]["last.pt"]


# ---- runs are never lost -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(data_root, tmp_path_factory) -> Path:
    "One finished tiny run (1 epoch, 3 steps) that tests copy and damage."
    out = tmp_path_factory.mktemp("tiny_run")
    train(tiny(data_root, out, run_name="run", epochs=1))
    return out / "run"



def test_existing_run_is_refused_then_resumed_or_overwritten(data_root, tmp_path, tiny_run):
    import shutil
    from poselab.train import RunExistsError
    shutil.copytree(tiny_run, tmp_path / "run")                                   # a finished 1-epoch run
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    with pytest.raises(RunExistsError, match=r"(?s)already holds a run.*resume=True.*another output_dir.*overwrite=True"):
        train(tiny(data_root, tmp_path, run_name="run", epochs=2))
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before   # nothing touched
    assert train(tiny(data_root, tmp_path, run_name="run", epochs=2, resume=True))["steps"] == 6
    assert train(tiny(data_root, tmp_path, run_name="run", epochs=1, overwrite=True))["steps"] == 3
    assert "overwrite: false" in (tmp_path / "run/config.yaml").read_text()      # a rerun of it is refused again


def test_orphan_temporary_files_are_removed(data_root, tmp_path, tiny_run):
    import shutil
    run = tmp_path / "run"; shutil.copytree(tiny_run, run)
    (run / ".last.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")       # a kill during a save leaves this
    train(tiny(data_root, tmp_path, run_name="run", epochs=1, resume=True))
    assert sorted(p.name for p in run.glob(".*")) == []


def test_no_run_folder_before_the_data_is_readable(data_root, tmp_path, monkeypatch):
    "A malformed annotation (keypoints of the wrong length) names the file and the annotation id; no run folder."
    import shutil
    import poselab.train as T
    from poselab.data.formats import DatasetLayoutError
    world = tmp_path / "data"; shutil.copytree(data_root / "synthetic", world / "synthetic")
    monkeypatch.setattr(T, "build_synthetic", lambda *a, **k: {})
    p = world / "synthetic/annotations/person_keypoints_train.json"
    d = json.loads(p.read_text()); a = d["annotations"][2]; a["keypoints"] = a["keypoints"][:-3]
    p.write_text(json.dumps(d))
    with pytest.raises(DatasetLayoutError, match=rf"person_keypoints_train.json has annotation id {a['id']} .*48 keypoint values"):
        train(tiny(world, tmp_path, run_name="x"))
    assert not (tmp_path / "x").exists()


def _truncated(p: Path) -> Path:
    b = p.read_bytes(); p.write_bytes(b[:len(b) // 3]); return p


@pytest.mark.parametrize("fault", ["empty", "truncated", "foreign"])
def test_checkpoint_faults_raise_checkpoint_error_everywhere(data_root, tmp_path, tiny_run, fault):
    "Every loader (resume, evaluation, official .pth, .safetensors) names the file and the fault."
    from safetensors.torch import save_file
    from poselab.evaluate import load_pose_model
    from poselab.models.core import CheckpointError, create_model, load_checkpoint
    from poselab.train import evaluate_run
    st = load_run_checkpoint(tiny_run / "last.pt")
    net = create_model("pose_resnet_18", num_joints=17, deconv_filters=(128, 128, 128))
    save_file({k: v.contiguous() for k, v in st["model"].items()}, str(tmp_path / "w.safetensors"))
    torch.save(st["model"], tmp_path / "w.pth")

    def damage(p: Path) -> Path:
        if fault == "empty": p.write_bytes(b"")
        elif fault == "truncated": _truncated(p)
        else: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
        return p
    want = {"empty": "empty", "truncated": "truncated", "foreign": "another format"}[fault]
    import shutil
    run = tmp_path / "out/run"; shutil.copytree(tiny_run, run)
    damage(run / "last.pt"); damage(run / "best.pt")
    with pytest.raises(CheckpointError, match=rf"(?s)last\.pt.*{want}"):                       # resume
        train(tiny(data_root, tmp_path / "out", run_name="run", epochs=2, resume=True))
    with pytest.raises(CheckpointError, match=rf"(?s)best\.pt.*{want}"):                       # engine evaluation
        evaluate_run(run)
    with pytest.raises(CheckpointError, match=rf"(?s)best\.pt.*{want}"):                       # evaluation chapter
        load_pose_model(checkpoint=run / "best.pt")
    with pytest.raises(CheckpointError, match=rf"(?s)w\.pth.*{want}"):                         # official .pth
        load_checkpoint(net, damage(tmp_path / "w.pth"))
    with pytest.raises(CheckpointError, match=r"w\.safetensors"):                             # .safetensors
        load_checkpoint(net, damage(tmp_path / "w.safetensors"))


def test_resume_from_best_pt_is_refused(data_root, tmp_path, tiny_run):
    import shutil
    from poselab.models.core import CheckpointError
    shutil.copytree(tiny_run, tmp_path / "b")
    shutil.copy(tmp_path / "b/best.pt", tmp_path / "b/last.pt")
    with pytest.raises(CheckpointError, match="weights-only best.pt"):
        train(tiny(data_root, tmp_path, run_name="b", epochs=2, resume=True))


def test_code_running_pickle_is_refused_without_weights_only_advice(tmp_path):
    import os as _os
    from poselab.models.core import CheckpointError
    class Evil:
        def __reduce__(self): return (_os.system, ("true",))
    torch.save({"model": Evil(), "config": {}}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as e:
        load_run_checkpoint(tmp_path / "evil.pt")
    assert "may run code" in str(e.value) and "weights_only=False" not in str(e.value)


def test_nan_at_the_first_step_says_there_is_no_checkpoint(data_root, tmp_path):
    from poselab.models.core import create_model
    model = create_model("pose_resnet_18", num_joints=17, deconv_filters=(128, 128, 128))
    model.register_forward_hook(lambda m, i, o: o * float("nan") if m.training else o)
    with pytest.raises(NonFiniteLossError, match=r"step 1 .*no checkpoint has been written yet") as e:
        train(tiny(data_root, tmp_path, run_name="nan1"), model=model)
    assert "holds the last good state" not in str(e.value)
    assert not (tmp_path / "nan1/last.pt").exists() and list((tmp_path / "nan1").glob(".*.tmp")) == []


def test_skipped_validation_images_are_counted_named_and_recorded(data_root, tmp_path, monkeypatch):
    import shutil
    import poselab.train as T
    world = tmp_path / "data"; shutil.copytree(data_root / "synthetic", world / "synthetic")
    monkeypatch.setattr(T, "build_synthetic", lambda *a, **k: {})        # use the damaged copy as it is
    ann = json.loads((world / "synthetic/annotations/person_keypoints_val.json").read_text())
    files = [im["file_name"] for im in ann["images"]]
    (world / "synthetic/images/val" / files[0]).write_bytes(b"\xff\xd8\xff\xe0 broken")   # corrupt
    (world / "synthetic/images/val" / files[1]).unlink()                                  # missing
    (world / "synthetic/images/train/000000.jpg").write_bytes(b"\xff\xd8 broken")        # a training one too
    with pytest.warns(UserWarning, match=r"validation skipped 2 corrupt or missing images.*over the other 6 images"):
        res = train(tiny(world, tmp_path, run_name="skip", epochs=1, limit_batches=4, limit_val=None))
    m = json.loads((tmp_path / "skip/metrics.json").read_text())
    assert sorted(Path(p).name for p in m["skipped_images"]) == sorted(files[:2])
    assert m["val_images"] == 6 and res["val_images"] == 6
    assert m["train_skipped_samples"] >= 0 and "train_skipped_samples" in m


# ---- settings are checked by type ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad,msg", [
    (dict(lr="abc"), "lr='abc' must be a number"), (dict(batch_size="8"), "batch_size='8' must be a whole number"),
    (dict(epochs=2.5), "epochs=2.5 must be a whole number"), (dict(flip_test="no"), "flip_test='no' must be true or false"),
    (dict(limit_val=0), "limit_val=0 must be >= 1"), (dict(sigma=-1), "sigma=-1.0 must be >= 0"),
    (dict(augment="[1, 2]"), "augment=[1, 2] must be a mapping"), (dict(run_name="a/b"), "plain folder name")])
def test_settings_are_typed_with_the_field_named(bad, msg):
    from poselab.train import ConfigError
    with pytest.raises(ConfigError, match=re.escape(msg)):
        RunConfig(**bad)
    with pytest.raises(ConfigError, match=re.escape(msg.split(" must")[0].split("=")[0])):   # yaml files alike
        RunConfig.from_dict(bad)


def test_cli_set_reads_numbers_and_fails_in_one_line(tmp_path):
    from poselab.train import config_from_args
    cfg = config_from_args(["--set", "lr=1e-3", "--set", "epochs=2", "--set", "input_size=64x64"])
    assert (cfg.lr, cfg.epochs, cfg.input_size) == (1e-3, 2, [64, 64])
    y = tmp_path / "run.yaml"; y.write_text("lr: 1e-3\nbatch_size: 8\n")
    assert config_from_args(["--config", str(y)]).lr == 1e-3
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cases = [(["--set", "lr=abc"], "lr='abc' must be a number"), (["--set", "epochs=1.5"], "epochs=1.5 must be a whole number"),
             (["--set", "devise=cpu"], "unknown RunConfig settings ['devise']"),
             (["--set", f"data_root={tmp_path}", "--set", "dataset=coco"], "coco:")]
    if not torch.cuda.is_available(): cases.append((["--set", "device=cuda"], "CUDA is not available"))
    for args, msg in cases:
        r = subprocess.run([sys.executable, "-c", "from poselab.train import main; main()", *args], env=env,
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr[-2000:])
        assert msg in r.stderr and "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_papermill_type_error_names_the_setting(tmp_path):
    pytest.importorskip("papermill")
    r = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "nbs/train.ipynb"), str(tmp_path / "o.ipynb"),
                        "-p", "lr", "abc", "-p", "output_dir", str(tmp_path / "runs"), "-k", "python3"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode != 0 and "lr='abc' must be a number" in r.stderr + r.stdout
    assert not (tmp_path / "runs").exists()
