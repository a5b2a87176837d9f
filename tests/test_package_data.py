"Package data travels with the wheel: the checkpoint manifests are found from an installed copy, away from the repository."
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_checkpoint_manifests(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = next(tmp_path.glob("poselab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if n.startswith("poselab/assets/checkpoints/") and n.endswith(".json")}
    in_repo = {p.relative_to(ROOT).as_posix() for p in (ROOT / "poselab/assets/checkpoints").glob("*.json")}
    assert shipped == in_repo and len(shipped) >= 40
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)                  # what `pip install` puts in site-packages
    away = tmp_path / "elsewhere"; away.mkdir()               # no repository above the working directory
    code = ("import poselab, poselab.models.core as c; m = c.load_manifest('hourglass_s2_b1_mpii'); "
            "print(poselab.__file__); print(c.manifest_dir()); print(len(c.list_manifests()), m['num_params'])")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=away, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    pkg, folder, counts = r.stdout.split("\n")[:3]
    assert Path(pkg).is_relative_to(site) and Path(folder) == site / "poselab/assets/checkpoints"
    assert int(counts.split()[0]) == len(shipped) and int(counts.split()[1]) > 0
