"""The explorer chapter in a real browser: JupyterLab headless on a free local port, the notebook opened and run in
headless Chromium (driven by Selenium through the system chromedriver), a widget moved, the figure checked to change.
The screenshots are kept under outputs/browser/."""
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "outputs" / "browser"
INSTALL = ("headless Chromium is needed for the browser tests: `apt-get install -y chromium chromium-driver` "
           "(Debian) and `pip install selenium`")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1100"]


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail(f"selenium is not installed. {INSTALL}")
    if not chromium or not driver:
        pytest.fail(f"chromium={chromium}, chromedriver={driver}: {INSTALL}")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc, log: Path, timeout: float = 90):
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with status {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2); return
        except Exception: time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s")


def _png(el) -> np.ndarray:
    import cv2
    return cv2.imdecode(np.frombuffer(el.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)


def _wait_change(el, before: np.ndarray, timeout: float = 60) -> np.ndarray:
    t = time.time()
    while time.time() - t < timeout:
        time.sleep(0.5)
        now = _png(el)
        if now.shape != before.shape or np.abs(now.astype(int) - before).max() > 0: return now
    raise AssertionError("the explorer figure did not change after moving a widget")


@pytest.mark.slow
def test_explorer_runs_in_jupyterlab(tmp_path):
    chromium, chromedriver = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    work = tmp_path / "lab"; work.mkdir()
    nb = json.loads((ROOT / "nbs/23_explorer.ipynb").read_text())
    nb["metadata"]["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    (work / "explorer.ipynb").write_text(json.dumps(nb))
    port = _free_port()
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "OMP_NUM_THREADS": "2"}
    lab = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                            "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
                            f"--ServerApp.root_dir={work}", "--LabApp.news_url=", "--allow-root", "--LabApp.expose_app_in_browser=True", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                           cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "w"))
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for f in FLAGS + [f"--user-data-dir={tmp_path / 'chrome'}"]: opts.add_argument(f)
    driver = None
    ART.mkdir(parents=True, exist_ok=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status", lab, tmp_path / "lab.log")
        driver = webdriver.Chrome(service=Service(chromedriver), options=opts)
        wait = WebDriverWait(driver, 150, poll_frequency=0.5)
        driver.get(f"http://127.0.0.1:{port}/lab/tree/explorer.ipynb")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell"))
        # the kernel is up when the status shows Idle; then Run > Run All Cells
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.jp-Notebook-ExecutionIndicator, .jp-StatusBar-TextItem')]"
            ".some(e => /Idle/.test(e.getAttribute('title') || '') || /Idle/.test(e.textContent))"))
        def ready(d):   # accept a kernel prompt if one shows; ready when the notebook's kernel is idle
            for b in d.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"): b.click()
            return d.execute_script("const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                                    "const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                                    "return !!k && k.status === 'idle';")
        wait.until(ready)
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")

        def figure(d):
            for b in d.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"): b.click()
            return d.find_elements(By.CSS_SELECTOR, ".poselab-explorer-figure")
        img = wait.until(figure)[0]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", img)
        time.sleep(1)
        before = _png(img)
        (ART / "explorer_before.png").write_bytes(img.screenshot_as_png)
        # move the view menu to the heatmap: the figure must change
        view = [s for s in driver.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")][1]
        Select(view).select_by_visible_text("heatmap")
        after = _wait_change(img, before)
        (ART / "explorer_heatmap.png").write_bytes(img.screenshot_as_png)
        # move the sample slider one step with the keyboard: the figure changes again
        handle = driver.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
        handle.click(); handle.send_keys(Keys.ARROW_RIGHT)
        _wait_change(img, after)
        driver.save_screenshot(str(ART / "explorer_page.png"))
        print(f"screenshots: {ART}/explorer_before.png, explorer_heatmap.png, explorer_page.png")
        errors = [e for e in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
                  if "Traceback" in e.text]
        assert not errors, errors[0].text[:2000]
    finally:
        if driver is not None:
            try: driver.save_screenshot(str(ART / "explorer_last.png"))
            except Exception: pass
            driver.quit()
        lab.terminate()
        try: lab.wait(20)
        except subprocess.TimeoutExpired: lab.kill()
