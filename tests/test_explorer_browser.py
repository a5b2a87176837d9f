"""The explorer chapter in a real browser: JupyterLab headless on a free local port, the notebook opened and run in
headless Chromium (driven by Selenium through the system chromedriver), a widget moved and the view switched to heatmap and attribution, the figure checked to change each time.
The screenshots are kept under outputs/browser/."""
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from browser import ART, ROOT, find_browser, free_port, png, start_chrome, wait_change


def _wait_http(url: str, proc, log: Path, timeout: float = 90):
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with status {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2); return
        except Exception: time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s")


@pytest.mark.slow
def test_explorer_runs_in_jupyterlab(tmp_path):
    find_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    work = tmp_path / "lab"; work.mkdir()
    nb = json.loads((ROOT / "nbs/23_explorer.ipynb").read_text())
    nb["metadata"]["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    (work / "explorer.ipynb").write_text(json.dumps(nb))
    port = free_port()
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "OMP_NUM_THREADS": "2"}
    lab = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                            "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
                            f"--ServerApp.root_dir={work}", "--LabApp.news_url=", "--allow-root", "--LabApp.expose_app_in_browser=True", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                           cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "w"))
    driver = None
    ART.mkdir(parents=True, exist_ok=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status", lab, tmp_path / "lab.log")
        driver = start_chrome(tmp_path / "chrome")
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
        before = png(img)
        (ART / "explorer_before.png").write_bytes(img.screenshot_as_png)
        # move the view menu to the heatmap: the figure must change
        view = [s for s in driver.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")][1]
        Select(view).select_by_visible_text("heatmap")
        after = wait_change(img, before)
        (ART / "explorer_heatmap.png").write_bytes(img.screenshot_as_png)
        # move the sample slider one step with the keyboard: the figure changes again
        handle = driver.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
        handle.click(); handle.send_keys(Keys.ARROW_RIGHT)
        moved = wait_change(img, after, what="moving the sample slider")
        # the attribution view: PoseIG of the selected sample and joint, computed on demand
        Select(view).select_by_visible_text("attribution")
        wait_change(img, moved, timeout=90, what="switching to the attribution view")
        time.sleep(1)
        (ART / "explorer_attribution.png").write_bytes(img.screenshot_as_png)
        driver.save_screenshot(str(ART / "explorer_page.png"))
        print(f"screenshots: {ART}/explorer_before.png, explorer_heatmap.png, explorer_attribution.png, explorer_page.png")
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
