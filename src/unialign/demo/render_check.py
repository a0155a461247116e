"""Open a report in headless Chromium and check that it renders with every image.

``report.html`` carries a tiny inline script (:data:`PROBE_SCRIPT`) that, once the page has loaded,
counts its ``<img>`` elements and the ones that failed to decode (``!complete || naturalWidth == 0``)
and writes both counts onto ``<body>`` as ``data-images`` / ``data-broken``. Chromium's ``--dump-dom``
prints the DOM after the load, so the counts come back without a browser-automation library.

    check_report(html) -> RenderCheck(ok, images, broken, expected, browser, screenshot, problem)

``ok`` needs: the browser ran, the probe reported, ``broken == 0`` and ``images`` equals the number of
``<img`` tags in the file (nothing dropped by the parser).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: names of a headless-capable Chromium, tried in order (Debian: chromium-headless-shell, chromium)
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "chrome")
#: the probe the report embeds (see the module docstring)
PROBE_SCRIPT = (
    "window.addEventListener('load',function(){var i=document.images,b=0;"
    "for(var k=0;k<i.length;k++){if(!i[k].complete||i[k].naturalWidth===0){b++;}}"
    "document.body.setAttribute('data-images',String(i.length));"
    "document.body.setAttribute('data-broken',String(b));});"
)
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
          "--virtual-time-budget=10000")


@dataclass
class RenderCheck:
    """Outcome of :func:`check_report`; ``problem`` says why ``ok`` is False ("" when ok)."""

    ok: bool
    images: int
    broken: int
    expected: int
    browser: str
    screenshot: str
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_browser() -> str | None:
    """Path of the first of :data:`BROWSERS` on ``PATH`` (or in ``/usr/lib/chromium``), else None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    for path in (Path("/usr/lib/chromium/chromium-headless-shell"), Path("/usr/lib/chromium/chromium")):
        if path.is_file():
            return str(path)
    return None


def _run(cmd: list[str], timeout: float) -> tuple[int, str, str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout:.0f} s"
    except OSError as e:  # not there, not executable
        return 127, "", f"could not start: {e}"
    return done.returncode, done.stdout, done.stderr


def check_report(html_path: str | Path, *, browser: str | None = None, screenshot: str | Path | None = None,
                 timeout: float = 90.0) -> RenderCheck:
    """Load `html_path` in headless Chromium; count rendered and broken images (module docstring).

    Args:
        html_path: the report (a local file).
        browser: Chromium executable (default: :func:`find_browser`).
        screenshot: also write a full-width PNG screenshot here (1280 x 4000 px window).
        timeout: seconds per browser run.
    """
    html_path = Path(html_path).resolve()
    source = html_path.read_text(encoding="utf-8", errors="replace")
    expected = len(re.findall(r"<img\b", source))
    exe = browser or find_browser()
    if exe is None:
        return RenderCheck(False, 0, 0, expected, "", "", "no Chromium found (Debian: apt-get install "
                           "chromium-headless-shell)")
    with tempfile.TemporaryDirectory(prefix="unialign-chromium-") as profile:
        base = [exe, *_FLAGS, f"--user-data-dir={profile}"]
        rc, out, err = _run([*base, "--dump-dom", html_path.as_uri()], timeout)
        shot = ""
        if screenshot is not None:
            target = Path(screenshot).resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            _run([*base, f"--screenshot={target}", "--window-size=1280,4000", html_path.as_uri()], timeout)
            shot = str(target) if target.is_file() else ""
    body = re.search(r"<body\b[^>]*>", out)
    images = re.search(r'data-images="(\d+)"', body.group(0)) if body else None
    broken = re.search(r'data-broken="(\d+)"', body.group(0)) if body else None
    if images is None or broken is None:
        tail = (err.strip().splitlines() or [""])[-1][:300]
        return RenderCheck(False, 0, 0, expected, exe, shot,
                           f"{Path(exe).name} exited {rc} without the page's image probe: {tail}")
    n, b = int(images.group(1)), int(broken.group(1))
    problem = ""
    if b:
        problem = f"{b} of {n} images failed to render"
    elif n != expected:
        problem = f"the page shows {n} images but the file has {expected} <img> tags"
    return RenderCheck(not problem, n, b, expected, exe, shot, problem)


__all__ = ["BROWSERS", "PROBE_SCRIPT", "RenderCheck", "check_report", "find_browser"]
