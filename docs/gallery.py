"""Regenerate the picture gallery of the docs index (`nbs/images/gallery/*.png`, linked from `nbs/index.ipynb`).

Three pictures are drawn here with the chapters' functions on a small synthetic world (generated in a temporary
folder): the synthetic preview grid, the heatmap targets of a crop, and a PoseIG attribution map. Three come from
pictures the chapters drew when they ran (saved outputs of their notebooks, picked by cell id: the checkpoint
evaluation's predictions, the lifting run's examples, the GAN's samples) and one from `nbs/images/weak3d/`; those
need trained models, which this script does not train. Every picture is scaled to a thumbnail `--width` pixels wide
(PNG, at most 100 KB).

    python docs/gallery.py            # about half a minute on 2 CPU cores
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
OUT = NBS / "images" / "gallery"
MAX_BYTES = 100_000

# name -> (notebook, cell id, output index, rows kept): pictures the chapters saved when they ran; `rows` keeps the
# top 1/rows of a picture made of equal rows (the lifting examples: one sample of three)
SAVED = {
    "prediction": ("17_evaluate_checkpoints.ipynb", "e1f3a5b7", 0, 1),
    "lifting": ("18_lifting_3d.ipynb", "f9296eea", 0, 3),
    "gan": ("20_pose_gan.ipynb", "2ac9e12f", 0, 1),
}
FILES = {"weak3d": NBS / "images" / "weak3d" / "stage3_sample.png"}


def saved_picture(nb_name: str, cell_id: str, index: int = 0, rows: int = 1) -> np.ndarray:
    "RGB pixels of the `index`-th picture output of cell `cell_id` of a chapter notebook (its top 1/`rows`)."
    path = NBS / nb_name
    nb = json.loads(path.read_text())
    cell = next((c for c in nb["cells"] if c.get("id") == cell_id), None)
    if cell is None: raise KeyError(f"{path}: no cell with id {cell_id}; update SAVED in {__file__}")
    pics = [o["data"][k] for o in cell.get("outputs", []) for k in ("image/png", "image/jpeg") if k in o.get("data", {})]
    if len(pics) <= index:
        raise ValueError(f"{path}: cell {cell_id} has {len(pics)} saved pictures; run the chapter with its outputs saved "
                         f"(jupyter nbconvert --execute --inplace {path}) or update SAVED in {__file__}")
    data = pics[index] if isinstance(pics[index], str) else "".join(pics[index])
    img = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    return img[:img.shape[0] // rows, :, ::-1]


def figure_pixels(fig) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig); canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _crop_border(img: np.ndarray, tol: int = 6) -> np.ndarray:
    "Drop the uniform margin around a figure (the colour of the top-left pixel)."
    diff = np.abs(img.astype(int) - img[0, 0].astype(int)).max(-1) > tol
    ys, xs = np.nonzero(diff)
    if not len(ys): return img
    return img[max(ys.min() - 2, 0):ys.max() + 3, max(xs.min() - 2, 0):xs.max() + 3]


def thumbnail(img: np.ndarray, width: int) -> bytes:
    "PNG bytes of `img` (RGB) scaled to `width` pixels wide, at most MAX_BYTES (narrower if needed)."
    img = _crop_border(np.ascontiguousarray(img))
    while True:
        h = max(1, round(img.shape[0] * width / img.shape[1]))
        small = cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA) if width < img.shape[1] else img
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(small[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok: raise RuntimeError("PNG encoding failed")
        if len(buf) <= MAX_BYTES or width <= 120: return buf.tobytes()
        width = int(width * 0.85)


def live_pictures(work: Path) -> dict[str, np.ndarray]:
    "The pictures drawn here on a small synthetic world: preview grid, heatmap targets, PoseIG map."
    import torch
    from matplotlib.figure import Figure
    from poselab.attribution import density_overlay, plot_attribution, pose_ig
    from poselab.data.formats import load_dataset
    from poselab.data.pipelines import TopDownDataset, tensor_to_image
    from poselab.models.core import create_model
    from poselab.synthetic import build_synthetic, preview_grid
    from poselab.viz import show_heatmaps

    world = work / "synthetic"
    build_synthetic(world, n_train=0, n_val=8, seed=0, workers=1, progress=False)
    out = {"synthetic": preview_grid(world, "val", n=8, ncols=4)}
    ds = TopDownDataset(load_dataset("synthetic", work, "val"), input_size=(96, 128), heatmap_size=(24, 32),
                        train=False)
    s = ds[0]
    crop = tensor_to_image(s["image"])
    out["heatmaps"] = figure_pixels(show_heatmaps(crop, s["target"].numpy(), "coco", joints=["left_wrist", "right_ankle"],
                                                  ncols=3, figsize=(6, 3), dpi=72))
    torch.manual_seed(0)
    net = create_model("pose_resnet_18", num_joints=17, deconv_filters=(64, 64, 64)).eval()
    j = 9                                                     # left wrist
    maps = pose_ig(net, s["image"][None], None, {"target": s["target"][None].float()}, steps=8, joints=[j])
    m = maps[0, 0].numpy()
    fig = Figure(figsize=(6, 3), dpi=72); axs = fig.subplots(1, 3)
    axs[0].imshow(crop); axs[0].set_title("crop", fontsize=9)
    plot_attribution(m, axs[1], "PoseIG map: left wrist")
    axs[2].imshow(density_overlay(crop, m)); axs[2].set_title("density", fontsize=9)
    for a in axs: a.axis("off")
    out["attribution"] = figure_pixels(fig)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT), help="folder of the gallery PNGs")
    ap.add_argument("--width", type=int, default=320, help="thumbnail width in pixels")
    a = ap.parse_args(argv)
    t0 = time.time()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    pics = {name: saved_picture(*where) for name, where in SAVED.items()}
    for name, path in FILES.items():
        if not path.is_file(): raise FileNotFoundError(f"{path} not found (a picture of the gallery)")
        pics[name] = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
    with tempfile.TemporaryDirectory() as d: pics.update(live_pictures(Path(d)))
    for name, img in sorted(pics.items()):
        png = thumbnail(img, a.width)
        tmp = out / f".{name}.png.tmp"; tmp.write_bytes(png); tmp.replace(out / f"{name}.png")
        print(f"{out / (name + '.png')}: {len(png) / 1000:.1f} KB")
    print(f"{len(pics)} gallery pictures in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
