"The documentation site builds offline, every page is sound, and the chapters show their pictures."
import re
from pathlib import Path

import nbformat
import pytest

from offline_docs import NBS, build_in_subprocess, check, page_name


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built in a separate interpreter: nbdev's docs processing runs the notebooks' exported cells, and
    their registrations (tasks, models) must not replace the package's own in this test session."""
    out = tmp_path_factory.mktemp("docs")
    pages, problems = build_in_subprocess(out)
    return out, pages, problems


def test_every_notebook_has_a_page(site):
    out, pages, _ = site
    expected = {"index.html"} | {page_name(p) for p in NBS.glob("[0-9]*.ipynb")}
    assert expected <= {p.name for p in pages}


def test_page_names_are_unique():
    "No two notebooks become the same page (nbdev drops the number prefix: `21_x.ipynb` and `x.ipynb` collide)."
    names = {}
    for nb in NBS.glob("*.ipynb"): names.setdefault("index.html" if nb.stem == "index" else page_name(nb), []).append(nb.name)
    assert {n: v for n, v in names.items() if len(v) > 1} == {}


def test_no_broken_page(site):
    out, _, problems = site
    assert problems + check(out) == []


def test_pages_are_offline(site):
    out, pages, _ = site
    for page in pages:
        text = page.read_text()
        assert not re.search(r"<script[^>]+src=", text), page.name
        for url in re.findall(r'<(?:img|link|source|iframe)\b[^>]*?(?:src|href)="([^"]+)"', text):
            assert not re.match(r"(https?:)?//", url), (page.name, url)


def test_chapters_with_pictures_show_them(site):
    "A notebook whose saved outputs contain a picture shows it on its page."
    out, _, _ = site
    for nb_path in NBS.glob("[0-9]*.ipynb"):
        nb = nbformat.read(nb_path, as_version=4)
        n_pics = sum(any(k.startswith("image/") for k in o.get("data", {})) for c in nb.cells for o in c.get("outputs", []))
        if n_pics:
            html = (out / page_name(nb_path)).read_text()
            assert re.search(r"data:image/(png|jpeg);base64", html), nb_path.name


def test_synthetic_page_shows_the_preview_grid(site):
    "The synthetic world's page shows generated images with their ground-truth skeletons."
    out, _, _ = site
    html = (out / "synthetic.html").read_text()
    assert len(re.findall(r"data:image/(?:png|jpeg);base64", html)) >= 2


# ---- the README and the docs index promise only what exists --------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
COMING = {r"3D lifting": "poselab.lifting", r"weakly.supervised 3D": "poselab.weak3d", r"pose GANs?\b": "poselab.gan",
          r"attribution": "poselab.attribution"}


def _has_module(name: str) -> bool:
    import importlib.util
    try: return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError: return False


def _clauses(text: str) -> list[str]:
    "Table rows one by one; prose paragraphs joined and split into clauses at '.', ';' and ':'."
    out, para = [], []
    for line in text.splitlines() + [""]:
        if line.lstrip().startswith("|") or not line.strip():
            if para: out += re.split(r"(?<=[.;:])\s+", " ".join(para)); para = []
            if line.strip(): out.append(line)
        else: para.append(line.strip())
    return out


def _promises() -> dict[str, str]:
    index = nbformat.read(ROOT / "nbs/index.ipynb", as_version=4)
    return {"README.md": (ROOT / "README.md").read_text(),
            "nbs/index.ipynb": "\n\n".join(c.source for c in index.cells if c.cell_type == "markdown")}


def test_readme_names_only_modules_that_exist():
    "A feature or chapter named as available has its module; one marked coming has not landed yet (else flip it)."
    problems = []
    for where, text in _promises().items():
        for clause in _clauses(text):
            coming = "coming" in clause.lower()
            for mod in re.findall(r"`(poselab(?:\.\w+)+)`", clause):
                if not coming and not _has_module(mod): problems.append(f"{where}: `{mod}` does not exist: {clause[:90]}")
            for pat, mod in COMING.items():
                if not re.search(pat, clause, re.I): continue
                if not _has_module(mod) and not coming:
                    problems.append(f"{where}: names {pat!r} as available but {mod} does not exist; mark it (coming): {clause[:90]}")
                if _has_module(mod) and coming:
                    problems.append(f"{where}: {mod} exists now: change its status to works and drop (coming): {clause[:90]}")
    assert problems == [], "\n".join(problems)


def test_status_table_matches_the_package():
    rows = re.findall(r"^\|([^|\n]+)\|\s*`(poselab[\w.]*)`\s*\|\s*(works|coming)\s*\|$", (ROOT / "README.md").read_text(), re.M)
    assert len(rows) >= 9
    for feature, mod, status in rows:
        assert _has_module(mod) == (status == "works"), f"README: {feature.strip()!r} is marked {status} but " \
            f"{mod} {'exists' if _has_module(mod) else 'does not exist'}"


def test_one_way_to_run_the_main_job():
    "README, the docs index, train.ipynb's introduction and .ci/run's comment give the same main-job command."
    cmd = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[0].strip().split(" && ", 1)[1]
    assert "--log-output" in cmd
    train_nb = nbformat.read(ROOT / "nbs/train.ipynb", as_version=4)
    assert cmd in "\n".join(c.source for c in train_nb.cells if c.cell_type == "markdown")
    assert cmd in _promises()["nbs/index.ipynb"]
    ci = (ROOT / ".ci/run").read_text()
    assert cmd in ci
    when = r"takes about (\d+(?:\.\d+)?) minutes on 2 CPU cores"
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert re.findall(when, readme) and re.findall(when, readme)[:1] == re.findall(when, " ".join(ci.split()))[:1], \
        "README and .ci/run state different main-job times"
