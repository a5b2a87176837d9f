import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(config, items):
    "Tests marked `gpu` run only where CUDA is available."
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if has_cuda: return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords: item.add_marker(skip)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    "A tiny synthetic world (16 training and 8 validation images) shared by the training and evaluation tests."
    from poselab.synthetic import build_synthetic
    root = tmp_path_factory.mktemp("data")
    build_synthetic(root / "synthetic", 16, 8, seed=0, workers=1, progress=False)
    return root
