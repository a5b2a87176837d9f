"Real DataLoader worker processes: the pipelines load in parallel without deadlocking after OpenCV ran in the parent."
import subprocess
import sys
import textwrap
from pathlib import Path

FIX = Path(__file__).parent / "fixtures" / "pipelines"

SCRIPT = textwrap.dedent(f"""
    import cv2, torch
    from poselab.data.formats import read_coco
    from poselab.data.pipelines import TopDownDataset, build_loader
    recs = [r for r in read_coco({str(FIX / 'test_coco.json')!r}, {str(FIX)!r}, mode="train")]
    ds = TopDownDataset(recs, seed=0)
    first = ds[0]                                   # OpenCV and torch threads now run in this process
    cv2.setNumThreads(2); torch.set_num_threads(2)
    seen = 0
    for epoch in range(2):
        for batch in build_loader(ds, batch_size=4, workers=2, train=True):
            assert batch["image"].shape[1:] == first["image"].shape, batch["image"].shape
            assert batch["target"].shape[1:] == first["target"].shape
            seen += len(batch["image"])
    print("samples", seen)
""")


def test_two_workers_load_without_deadlock():
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "samples 24" in res.stdout, res.stdout
