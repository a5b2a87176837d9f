"The documentation site builds offline, every page is sound, and the chapters show their pictures."
import re
from pathlib import Path

import nbformat
import pytest

from offline_docs import NBS, build, check, page_name


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    pages, problems = build(out)
    return out, pages, problems


def test_every_notebook_has_a_page(site):
    out, pages, _ = site
    expected = {"index.html"} | {page_name(p) for p in NBS.glob("[0-9]*.ipynb")}
    assert expected <= {p.name for p in pages}


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
