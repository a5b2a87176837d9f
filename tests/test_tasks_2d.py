"""2D task settings of the engine: the hourglass's visibility loss and bar occlusion, and the bottom-up task's start
from a classification run's backbone (`backbone_init`)."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from poselab.losses import IntermediateSupervisionLoss, JointsMSELoss
from poselab.models.core import CheckpointError, create_model
from poselab.train import BottomUpTask, HourglassTask, RunConfig, save_checkpoint, train


def hg_cfg(data_root, tmp_path, **options) -> RunConfig:
    return RunConfig(task="hourglass", data_root=str(data_root), synthetic_train=16, synthetic_val=8,
                     output_dir=str(tmp_path), input_size=(64, 64), workers=0, logger="none", progress=False,
                     model_kwargs={"num_stacks": 2, "depth": 2, "num_feats": 32, "visibility_head": True},
                     options=options)


def test_hourglass_options_are_checked():
    with pytest.raises(ValueError, match="horizontal"):
        RunConfig(task="hourglass", options={"masking_mode": "diagonal"})
    with pytest.raises(ValueError, match=r"masking_prob=2.0 must be in \[0, 1\]"):
        RunConfig.from_dict({"task": "hourglass", "masking_prob": 2.0})   # a task option given by name
    with pytest.raises(ValueError, match="valid options: masking_prob"):
        RunConfig(task="hourglass", options={"masking": 0.5})
    assert RunConfig(task="hourglass").options["masking_prob"] == 0.0    # occlusion is off unless asked for


def test_visibility_targets_known_answer():
    "Labelled joints inside the heatmap are visible unless an occlusion bar covers them; every labelled joint counts."
    joints = torch.tensor([[[10., 10., 1.], [40., 50., 1.], [5., 60., 1.], [0., 0., 0.]]])
    occ = torch.zeros(1, 64, 64, dtype=torch.bool); occ[0, 45:55] = True        # covers the second joint only
    batch = {"meta": {"joints": joints}, "target_weight": torch.tensor([[[1.], [1.], [0.], [0.]]]), "occlusion": occ}
    vis, w = HourglassTask.visibility_targets(batch)
    assert vis.tolist() == [[1., 0., 0., 0.]] and w.tolist() == [[1., 1., 1., 0.]]
    del batch["occlusion"]
    assert HourglassTask.visibility_targets(batch)[0].tolist() == [[1., 1., 0., 0.]]


def test_hourglass_loss_adds_the_weighted_visibility_loss(data_root, tmp_path):
    torch.manual_seed(0)
    task = HourglassTask(hg_cfg(data_root, tmp_path, masking_prob=1.0, visibility_weight=0.5))
    train_ds, _ = task.datasets()
    batch = torch.utils.data.default_collate([train_ds[i] for i in range(4)])
    assert batch["occlusion"].shape == (4, 64, 64) and batch["occlusion"].any()       # every crop got a bar
    model = task.build_model().eval()
    with torch.no_grad():
        out = model(batch["image"])
        heat = IntermediateSupervisionLoss(JointsMSELoss())(out["heatmaps"], batch["target"], batch["target_weight"])
        vis, w = task.visibility_targets(batch)
        bce = sum(F.binary_cross_entropy_with_logits(v, vis, weight=w) for v in out["visibility"])
        torch.testing.assert_close(task.loss(model, batch, "cpu"), heat + 0.5 * bce)
        task.options["visibility_weight"] = 0.0
        torch.testing.assert_close(task.loss(model, batch, "cpu"), heat)
    assert "occlusion" not in HourglassTask(hg_cfg(data_root, tmp_path)).datasets()[0][0]   # off by default


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory):
    "A classification run's checkpoint, as the engine writes it: the HRNet-W32 backbone plus a classifier head."
    torch.manual_seed(1)
    cls = create_model("hrnet_w32_cls", num_classes=5).state_dict()
    path = tmp_path_factory.mktemp("cls") / "best.pt"
    save_checkpoint(path, {"model": cls, "config": {"task": "classification", "model": "hrnet_w32_cls"}})
    return path, cls


def test_backbone_init_loads_the_classification_backbone(data_root, tmp_path, classification_run):
    path, cls = classification_run
    cfg = RunConfig.from_dict(dict(task="bottomup", data_root=str(data_root), output_dir=str(tmp_path),
                                   input_size=(64, 64), logger="none", backbone_init=str(path)))
    cfg.run_dir.mkdir(parents=True)
    task = BottomUpTask(cfg)
    task.check_data()
    torch.manual_seed(0)
    model = task.build_model()
    assert not torch.equal(model.state_dict()["stage4.0.fuse_layers.0.1.0.weight"], cls["stage4.0.fuse_layers.0.1.0.weight"])
    task.build_optimizer(model, 10)                     # where a starting run initialises the backbone
    own = model.state_dict()
    report = json.loads((cfg.run_dir / "backbone_init.json").read_text())
    backbone = [k for k in own if k.split(".")[0] in ("conv1", "bn1", "conv2", "bn2", "layer1") or
                k.startswith(("transition", "stage"))]
    assert sorted(report["loaded"]) == sorted(backbone) and report["missing"] == []
    assert all(torch.equal(own[k], cls[k]) for k in backbone)
    assert set(report["unused"]) == set(cls) - set(own)             # the classification head, the lower-branch fusions
    assert {"classifier.weight", "final_layer.0.weight"} <= set(report["unused"])
    assert not any(torch.equal(v, cls.get(k, torch.empty(0))) for k, v in own.items() if k.startswith("final_layers"))


def test_backbone_init_refuses_wrong_files(data_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="option backbone_init='nowhere.pt': no such file"):
        train(RunConfig.from_dict(dict(task="bottomup", data_root=str(data_root), output_dir=str(tmp_path / "out"),
                                       logger="none", backbone_init="nowhere.pt")))
    assert not (tmp_path / "out").exists()              # refused before a run folder is made
    cfg = RunConfig(task="bottomup", data_root=str(data_root), output_dir=str(tmp_path), input_size=(64, 64), logger="none")
    garbage = tmp_path / "garbage.pt"; garbage.write_bytes(b"not a checkpoint")
    small = tmp_path / "w18.pt"; save_checkpoint(small, {"model": create_model("hrnet_w18_small_cls", num_classes=3).state_dict()})
    resnet = tmp_path / "resnet.pt"; save_checkpoint(resnet, {"model": create_model("pose_resnet_18", num_joints=17).state_dict()})
    other = tmp_path / "other.pt"; save_checkpoint(other, {"model": {"fc.weight": torch.zeros(2, 2)}})
    model = create_model("higher_hrnet_w32")
    for path, msg in ((garbage, "garbage.pt"), (small, "differ in shape"), (resnet, "conv1.weight: checkpoint"),
                      (other, "none of its tensors is an HRNet backbone tensor")):
        task = BottomUpTask(RunConfig.from_dict({**cfg.to_dict(), "options": {"backbone_init": str(path)}}))
        with pytest.raises(CheckpointError, match=msg) as e:
            task.build_optimizer(model, 10)
        assert f"option backbone_init={str(path)!r}" in str(e.value)
