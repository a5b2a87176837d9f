"""Edge cases of poselab.metrics beyond the evaluation chapter: the call forms used elsewhere in the package keep
working, tensors and float32 give the float64 numbers, leading batch dimensions, and clear errors."""
import warnings

import numpy as np
import pytest
import torch

from poselab.metrics import (MetricWarning, auc3d, epe, heatmap_pck, jhmdb_pck, mpjpe, n_mpjpe, nme, p_mpjpe, pck,
                             pck3d, pck_auc, per_action)


@pytest.fixture
def poses2d():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (40, 17, 2))
    pred = gt + rng.normal(0, 6, gt.shape)
    vis = rng.random((40, 17)) > 0.3
    vis[:, 3] = False
    norm = rng.uniform(30, 60, 40)
    return pred, gt, vis, norm


def test_positional_calls_as_used_in_the_package(poses2d):
    pred, gt, vis, norm = poses2d
    per_joint = pck(pred, gt, vis, norm, 0.2)                     # evaluate: per-joint curve
    assert per_joint.shape == (17,) and np.isnan(per_joint[3]) and np.isfinite(np.delete(per_joint, 3)).all()
    mean = pck(pred, gt, vis, norm, 0.2, average=True)             # evaluate / train: the overall value
    assert mean == pytest.approx(np.nanmean(per_joint), abs=1e-12)
    pooled = pck(pred, gt, vis, norm, thr=0.2, average="pooled")
    err = np.linalg.norm(pred - gt, axis=-1) / norm[:, None]
    assert pooled == pytest.approx((err <= 0.2)[vis].mean(), abs=1e-12)


def test_auc_is_the_mean_of_the_overall_pck(poses2d):
    pred, gt, vis, norm = poses2d
    t = np.linspace(0, 0.5, 51)
    for average in (True, "pooled"):
        ref = np.mean([pck(pred, gt, vis, norm, x, average=average) for x in t])
        assert pck_auc(pred, gt, vis, norm, average=average) == pytest.approx(ref, abs=1e-12)


def test_tensors_and_float32_agree_with_float64(poses2d):
    pred, gt, vis, norm = poses2d
    ref = pck(pred, gt, vis, norm, 0.2, full=True)
    got = pck(torch.tensor(pred, dtype=torch.float32), torch.tensor(gt, dtype=torch.float32), torch.tensor(vis),
              torch.tensor(norm), 0.2, full=True)
    assert got["mean"] == pytest.approx(ref["mean"], abs=0.02)     # float32 inputs: only ties can move
    assert epe(torch.tensor(pred), torch.tensor(gt), mask=torch.tensor(vis)) == pytest.approx(epe(pred, gt, vis), abs=1e-12)
    assert nme(pred, gt, vis, norm) == pytest.approx((np.linalg.norm(pred - gt, axis=-1) / norm[:, None])[vis].mean(), abs=1e-12)


def test_masks_may_carry_a_trailing_axis(poses2d):
    pred, gt, vis, norm = poses2d
    assert pck(pred, gt, vis[..., None].astype(np.float32), norm, average=True) == pck(pred, gt, vis, norm, average=True)
    with pytest.raises(ValueError, match=r"\[N,K\]"):
        pck(pred, gt, vis[:5], norm)
    with pytest.raises(ValueError, match="must be \\[N,K,D\\]"):
        pck(pred[:, :5], gt, vis, norm)


def test_3d_calls_and_leading_dimensions():
    rng = np.random.default_rng(1)
    g = rng.normal(0, 300, (4, 8, 17, 3))
    p = g + rng.normal(0, 30, g.shape)
    m = rng.random((4, 8, 17)) > 0.2
    flat = lambda x: x.reshape(32, *x.shape[2:])
    assert mpjpe(p, g, False).shape == (4, 8)
    assert p_mpjpe(p, g, mask=m) == pytest.approx(p_mpjpe(flat(p), flat(g), mask=flat(m)), abs=1e-9)
    assert p_mpjpe(p, g, mask=m, align_on="visible") == pytest.approx(
        p_mpjpe(flat(p), flat(g), mask=flat(m), align_on="visible"), abs=1e-9)
    assert n_mpjpe(p, g, False, m).shape == (4, 8)
    pf, gf = flat(p), flat(g)
    assert pck3d(pf, gf, 150., flat(m)) == pytest.approx(pck3d(pf, gf, mask=flat(m)))
    assert auc3d(pf, gf, flat(m)) == pytest.approx(auc3d(pf, gf, mask=flat(m)))
    assert p_mpjpe(torch.tensor(pf), torch.tensor(gf), False).shape == (32,)
    with pytest.raises(ValueError, match="'none', 'procrustes' or 'scale'"):
        pck3d(pf, gf, alignment="similarity")


def test_per_action_weights_and_lengths():
    assert per_action([1., 3.], ["a", "a"], weights=[3, 1])["a"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="same length"):
        per_action([1., 2.], ["a"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = per_action([np.nan, 2.], ["a", "b"])
    assert np.isnan(out["a"]) and out["b"] == 2.0 and out["average"] == 2.0
    assert [w.category for w in caught] == [MetricWarning]


def test_heatmap_pck_shape_checks_and_jhmdb_box_format():
    hm = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="same non-empty"):
        heatmap_pck(hm, hm[:, :2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        r = heatmap_pck(hm, hm)                                    # every target empty: nothing counts
    assert r["joints"] == 0 and np.isnan(r["mean"])
    g = np.random.default_rng(2).uniform(0, 50, (3, 15, 2))
    with pytest.raises(ValueError, match="'xywh' or 'xyxy'"):
        jhmdb_pck(g, g, boxes=np.ones((3, 4)), box_format="cxcywh")
