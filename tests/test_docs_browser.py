"""The documentation site in a real browser: the offline build opened page by page (file://) in headless Chromium.
No page may log a console error or show a broken image; the index's gallery pictures load and link to existing
chapter pages. The index page's screenshot is kept as outputs/browser/docs_index.png."""
import time
from pathlib import Path

import pytest

from browser import ART, start_chrome
from offline_docs import NBS, build_in_subprocess, page_name

GALLERY = NBS / "images" / "gallery"

IMAGES = """return [...document.images].map(i => ({src: i.getAttribute('src').slice(0, 80), complete: i.complete,
                                             width: i.naturalWidth}))"""


def _loaded(driver, timeout: float = 30) -> list[dict]:
    "The page's images once the page and every image have finished loading (or failed)."
    t = time.time()
    while time.time() - t < timeout:
        if driver.execute_script("return document.readyState") == "complete":
            imgs = driver.execute_script(IMAGES)
            if all(i["complete"] for i in imgs): return imgs
        time.sleep(0.2)
    raise AssertionError(f"{driver.current_url} did not finish loading within {timeout} s")


@pytest.mark.slow
def test_docs_site_in_a_browser(tmp_path):
    from selenium.webdriver.common.by import By
    driver = start_chrome(tmp_path / "chrome", console_log=True)       # fails with the install command if missing
    try:
        # the checks can fail: a page with a console error and a missing picture is caught
        canary = tmp_path / "canary.html"
        canary.write_text("<html><body><img src='missing.png'><script>console.error('canary')</script></body></html>")
        driver.get(canary.as_uri())
        assert [i["width"] for i in _loaded(driver)] == [0]
        assert sum(e["level"] == "SEVERE" for e in driver.get_log("browser")) >= 2
        out = tmp_path / "site"
        pages, problems = build_in_subprocess(out)
        assert problems == [], problems
        assert out / "index.html" in pages and len(pages) >= len(list(NBS.glob("[0-9]*.ipynb"))) + 1
        errors, broken, n_imgs = [], [], 0
        for page in sorted(pages, key=lambda p: p.name != "index.html"):
            driver.get(page.resolve().as_uri())
            imgs = _loaded(driver)
            n_imgs += len(imgs)
            broken += [f"{page.name}: {i['src']}" for i in imgs if i["width"] == 0]
            errors += [f"{page.name}: {e['message'][:300]}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            if page.name == "index.html":
                gallery = driver.execute_script(
                    "return [...document.querySelectorAll('a')].filter(a => a.querySelector('img[src*=\"images/gallery/\"]'))"
                    ".map(a => { const i = a.querySelector('img'); return {href: a.getAttribute('href'), "
                    "src: i.getAttribute('src'), width: i.naturalWidth}; })")
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(1400, min(max(height, 1100), 8000))
                ART.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(ART / "docs_index.png"))
                driver.set_window_size(1400, 1100)
        assert errors == [], "browser console errors:\n" + "\n".join(errors)
        assert broken == [], "images that did not load:\n" + "\n".join(broken)
        assert n_imgs > 20
        # the gallery: every picture of nbs/images/gallery is shown, loads and links to an existing chapter page
        shown = {Path(g["src"]).name for g in gallery}
        assert shown == {p.name for p in GALLERY.glob("*.png")} and len(shown) >= 6, shown
        chapters = {page_name(p) for p in NBS.glob("[0-9]*.ipynb")}
        for g in gallery:
            assert g["width"] > 0, g
            assert g["href"] in chapters and (out / g["href"]).is_file(), f"gallery link {g['href']} is not a chapter page"
        for p in GALLERY.glob("*.png"):
            assert p.stat().st_size <= 100_000, f"{p} is {p.stat().st_size} bytes; regenerate with python docs/gallery.py"
        print(f"{len(pages)} pages, {n_imgs} images, {len(gallery)} gallery pictures; screenshot {ART / 'docs_index.png'}")
    finally:
        driver.quit()
