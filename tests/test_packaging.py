"The repository keeps its promises: notebooks and package in sync, clean notebooks, complete wheel, CI = README."
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return res


def test_export_changes_nothing(tmp_path):
    "`nbdev_export` on the committed notebooks reproduces the committed package byte for byte."
    for name in ("settings.ini", "setup.py", "pyproject.toml"):
        if (ROOT / name).exists(): shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs")
    shutil.copytree(ROOT / "poselab", tmp_path / "poselab", ignore=shutil.ignore_patterns("__pycache__"))
    _run([str(Path(sys.executable).parent / "nbdev_export")], tmp_path)
    changed = [str(p.relative_to(tmp_path)) for p in sorted((tmp_path / "poselab").rglob("*.py"))
               if not (ROOT / p.relative_to(tmp_path)).exists()
               or p.read_bytes() != (ROOT / p.relative_to(tmp_path)).read_bytes()]
    assert changed == [], f"run nbdev_export and commit: out of sync {changed}"


def test_notebooks_are_clean(tmp_path):
    "Committed notebooks are already `nbdev_clean`ed and their saved outputs stay small."
    shutil.copy(ROOT / "settings.ini", tmp_path / "settings.ini")
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs")
    _run([str(Path(sys.executable).parent / "nbdev_clean")], tmp_path)
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        assert nb.read_bytes() == (tmp_path / "nbs" / nb.name).read_bytes(), f"run nbdev_clean on {nb.name}"
        assert nb.stat().st_size < 3_000_000, f"{nb.name} saves too much output ({nb.stat().st_size} bytes)"


def test_notebooks_export_to_modules():
    "Every numbered notebook declares its module, and module paths are unique."
    seen = {}
    for nb_path in sorted((ROOT / "nbs").glob("[0-9]*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        mods = [m for c in nb.cells if c.cell_type == "code"
                for m in re.findall(r"^#\|\s*default_exp\s+(\S+)", c.source, re.M)]
        assert len(mods) == 1, nb_path.name
        assert mods[0] not in seen, f"{nb_path.name} and {seen.get(mods[0])} export the same module"
        seen[mods[0]] = nb_path.name


@pytest.mark.slow
def test_wheel_has_subpackages_and_assets(tmp_path):
    "A built wheel (not only an editable install) contains every subpackage and the shipped assets."
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)], ROOT)
    wheel = next(tmp_path.glob("poselab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for py in (ROOT / "poselab").rglob("*.py"):
        assert str(py.relative_to(ROOT)) in names, py
    for asset in (ROOT / "poselab" / "assets").rglob("*"):
        if asset.is_file(): assert str(asset.relative_to(ROOT)) in names, asset


def test_ci_runs_the_readme_commands():
    "`.ci/run` runs exactly the README's install command (the first command's install part) and test command."
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    first, test = blocks[0].strip(), blocks[1].strip()
    install, main_job = first.split(" && ", 1)
    assert install.startswith("pip install torch==2.13.0") and install in ci.splitlines()
    assert main_job.startswith("papermill nbs/train.ipynb")
    assert test in ci and "pytest tests" in test and "nbdev_test" in test
