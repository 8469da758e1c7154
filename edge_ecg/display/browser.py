"""Drive the display page in a real headless Chromium (tests, benchmark, screenshots; not the unit).

Uses Selenium (a dev dependency, imported here lazily) with Debian's ``chromium`` and
``chromium-driver``; nothing is downloaded (the driver path is given, so Selenium Manager stays
idle). The flags are the ones that work in a container without a GPU or a network.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--mute-audio", "--disable-dev-shm-usage"]


def find_chromium() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    drv = shutil.which("chromedriver") or (("/usr/bin/chromedriver") if Path("/usr/bin/chromedriver").exists() else None)
    return (exe, drv) if exe and drv else None


class Browser:
    """One headless Chromium window on ``url`` (``width`` x ``height`` CSS px), closed by ``close()``."""

    def __init__(self, url: str, profile: Path, width: int = 1280, height: int = 720) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        found = find_chromium()
        if found is None:
            raise RuntimeError("chromium and chromium-driver are needed (Debian packages 'chromium' 'chromium-driver')")
        exe, drv = found
        opts = webdriver.ChromeOptions()
        opts.binary_location = exe
        for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
            opts.add_argument(flag)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=drv), options=opts)
        self.driver.set_window_size(width, height)
        # the page's viewport exactly width x height (a headless window's size includes its frame)
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.driver.get(url)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait_for(self, script: str, timeout_s: float, poll_s: float = 0.05, what: str = "") -> Any:
        """Run ``script`` until it returns something truthy; that value (AssertionError on timeout)."""
        end = time.monotonic() + timeout_s
        while True:
            value = self.js(script)
            if value:
                return value
            if time.monotonic() > end:
                seen = self.js("const S = window.edgeEcg && window.edgeEcg.S; return S ? {t: S.streamT, off: S.off, "
                               "alarms: ((S.state || {}).alarms || []).map(a => a.alarm), source: (S.state || {}).source} : null")
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what or script}; the page had {seen}")
            time.sleep(poll_s)

    def stats(self) -> dict:
        return self.js("return window.edgeEcg && window.edgeEcg.stats;") or {}

    def console_errors(self) -> list[str]:
        try:
            return [e["message"] for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]
        except Exception:
            return []

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path

    def close(self) -> None:
        try:
            self.driver.quit()
        except Exception:
            pass
