"""Build the documentation site as plain offline HTML and check every page.

`nbdev_docs` renders the site with Quarto. Where Quarto is not installed, this script gives an offline
build from the same processed notebooks: nbdev's processing step (``show_doc``, hidden cells, front
matter), then nbconvert's body renderer wrapped in a self-contained page (inline CSS, no CDN). It then
checks every page: no error outputs, every image and internal link resolves, nothing external loaded.

    python tests/offline_docs.py --out _docs_offline
"""
from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;line-height:1.5}
nav{position:fixed;top:0;left:0;bottom:0;width:230px;overflow:auto;background:#f6f8fa;border-right:1px solid #ddd;padding:1rem}
nav a{display:block;color:#0b5cad;text-decoration:none;padding:2px 0;font-size:.92rem}
nav a.current{font-weight:bold}
main{margin-left:270px;max-width:980px;padding:1rem 2rem}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;border-radius:4px;font-size:.85rem}
code{font-size:.9em}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:2px 8px}
img{max-width:100%}
.description{color:#555;font-size:1.1rem}
.jp-OutputArea-output pre,.output_text pre{background:#fff;border-left:3px solid #ddd}
"""


def page_name(nb_path: Path) -> str:
    "`00_skeletons.ipynb` → `skeletons.html`, like nbdev's page names."
    return re.sub(r"^\d+[a-z]?_", "", nb_path.stem) + ".html"


def _front_matter(nb) -> dict:
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.lstrip().startswith("---"):
            body = cell.source.strip().strip("-")
            return yaml.safe_load(body) or {}
    return {}


def _directives(src: str) -> dict:
    out = {}
    for line in src.splitlines():
        m = re.match(r"^\s*#\|\s*([\w-]+)\s*:\s*(.+?)\s*$", line)
        if m: out[m.group(1)] = m.group(2)
    return out


def _prepare(nb):
    "Apply the Quarto cell options that matter offline (echo, include, output) and drop front matter."
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "raw": continue
        if cell.cell_type == "code":
            d = _directives(cell.source)
            if d.get("include") == "false": continue
            tags = set(cell.metadata.get("tags", []))
            if d.get("echo") == "false": tags.add("remove_input")
            if d.get("output") == "false": tags.add("remove_output")
            cell.metadata["tags"] = sorted(tags)
            cell.source = "\n".join(l for l in cell.source.splitlines() if not re.match(r"^\s*#\|", l))
            for o in cell.get("outputs", []):
                md = o.get("data", {}).get("text/markdown")
                if md:  # Pandoc link attributes ({target=...}) mean nothing to a plain markdown renderer
                    o["data"]["text/markdown"] = re.sub(r"\{[^{}\n]*target=[^{}\n]*\}", "", md)
        cells.append(cell)
    nb.cells = cells
    return nb


def _exporter():
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    ex = HTMLExporter(template_name="basic", exclude_input_prompt=True, exclude_output_prompt=True)
    trp = TagRemovePreprocessor(remove_input_tags={"remove_input"}, remove_all_outputs_tags={"remove_output"})
    ex.register_preprocessor(trp, enabled=True)
    return ex


def _pygments_css() -> str:
    from pygments.formatters import HtmlFormatter
    return HtmlFormatter().get_style_defs(".highlight")


def process_notebooks() -> tuple[Path, list[str]]:
    """Run nbdev's docs processing (no Quarto needed) notebook by notebook.

    Returns the folder of processed notebooks and the notebooks that failed to process (for example a
    cell mixing imports with other code, which nbdev runs while building the docs)."""
    import nbdev.serve_drv
    from nbdev.config import get_config
    from nbdev.serve import FilterDefaults, _proc_file
    cache = get_config().config_path / "_proc"
    if cache.exists(): shutil.rmtree(cache)
    cache.mkdir(parents=True)
    problems = []
    for src in sorted(NBS.iterdir()):
        job = _proc_file(src, cache=cache, path=NBS)
        if job is None: continue
        try:
            nbdev.serve_drv.main(job)
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            cause = f" ({type(e.__cause__).__name__}: {e.__cause__})" if e.__cause__ else ""
            problems.append(f"{src.name}: the docs processing failed: {msg}{cause}")
        finally:
            os.environ.pop("IN_TEST", None)
    return cache, problems


def notebook_problems(nb, name: str) -> list[str]:
    "Saved outputs that would show a broken page: errors and tracebacks."
    probs = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                probs.append(f"{name}: cell {i} has a saved error output ({o.get('ename')}: {o.get('evalue')})")
    return probs


def build(out: Path) -> tuple[list[Path], list[str]]:
    "Render every processed notebook to `out`; returns the pages written and the notebook problems."
    proc, problems = process_notebooks()
    out = Path(out)
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    for sub in ("images",):
        if (NBS / sub).exists(): shutil.copytree(NBS / sub, out / sub)
    nbs = sorted(p for p in proc.glob("*.ipynb"))
    entries = []
    for p in nbs:
        nb = nbformat.read(p, as_version=4)
        fm = _front_matter(nb)
        name = "index.html" if p.stem == "index" else str(fm.get("output-file") or page_name(p))
        entries.append((p, nb, fm, name))
    entries.sort(key=lambda e: (e[3] != "index.html", e[0].name))
    owners: dict[str, list[str]] = {}
    for p, _, _, name in entries: owners.setdefault(name, []).append(p.name)
    problems += [f"{' and '.join(nbs)} both become {name} (nbdev names a page after its notebook without the number "
                 "prefix); rename one notebook" for name, nbs in owners.items() if len(nbs) > 1]
    ex, css = _exporter(), CSS + _pygments_css()
    pages = []
    for p, nb, fm, name in entries:
        problems += notebook_problems(nb, name)
        title = str(fm.get("title") or p.stem)
        nav = "\n".join(
            f'<a href="{n}"{" class=current" if n == name else ""}>{html.escape(str(f.get("title") or q.stem))}</a>'
            for q, _, f, n in entries)
        body, _ = ex.from_notebook_node(_prepare(nb))
        desc = f'<p class="description">{html.escape(str(fm["description"]))}</p>' if fm.get("description") else ""
        page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)} – poselab</title>"
                f"<style>{css}</style></head><body><nav><b>poselab</b>\n{nav}</nav>"
                f"<main><h1>{html.escape(title)}</h1>{desc}\n{body}</main></body></html>")
        (out / name).write_text(page, encoding="utf-8")
        pages.append(out / name)
    return pages, problems


_SRC = re.compile(r"""<(img|script|link|iframe|source)\b[^>]*?\b(src|href)\s*=\s*["']([^"']+)["']""", re.I)
_HREF = re.compile(r"""<a\b[^>]*?\bhref\s*=\s*["']([^"'#]+)(?:#[^"']*)?["']""", re.I)


def check(out: Path) -> list[str]:
    "Problems found in the built pages (empty list = all pages fine)."
    out, problems = Path(out), []
    pages = sorted(out.glob("*.html"))
    if not pages: return [f"no pages in {out}"]
    if not (out / "index.html").exists(): problems.append("index.html missing")
    for page in pages:
        text = page.read_text(encoding="utf-8")
        if "<main>" not in text or "<h1>" not in text: problems.append(f"{page.name}: no title/body")
        if "Traceback (most recent call last)" in text: problems.append(f"{page.name}: a traceback is shown")
        for tag, _, url in _SRC.findall(text):
            if url.startswith("data:"): continue
            if re.match(r"^(https?:)?//", url):
                problems.append(f"{page.name}: <{tag}> loads an external resource {url}")
            elif not (out / url.split("#")[0].split("?")[0]).exists():
                problems.append(f"{page.name}: <{tag}> points to a missing file {url}")
        for url in _HREF.findall(text):
            if re.match(r"^([a-z]+:|//)", url): continue
            if not (out / url).exists(): problems.append(f"{page.name}: broken link {url}")
    return problems


def build_in_subprocess(out: Path) -> tuple[list[Path], list[str]]:
    """`build(out)` in a separate interpreter (pages, problems): nbdev's docs processing runs the notebooks' exported
    cells, and their registrations (tasks, models) must not replace the package's own in the calling process."""
    import json
    import subprocess
    out = Path(out)
    res = out.parent / (out.name + ".json")
    code = ("import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); from offline_docs import build; "
            "pages, problems = build(Path(sys.argv[2])); "
            "Path(sys.argv[3]).write_text(json.dumps([[str(p) for p in pages], problems]))")
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(out), str(res)], check=True)
    pages, problems = json.loads(res.read_text())
    return [Path(p) for p in pages], problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "_docs_offline"), help="output folder")
    args = ap.parse_args(argv)
    pages, problems = build(Path(args.out))
    problems += check(Path(args.out))
    print(f"{len(pages)} pages written to {args.out}")
    for p in problems: print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
