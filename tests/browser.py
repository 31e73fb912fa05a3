"""Headless Chromium for the screenshot tests: find (or install) it, take screenshots, and measure every
SVG text element in the page, without the DevTools protocol.

The measurement is a small script appended to a COPY of the page (the reports themselves forbid
scripts by their Content-Security-Policy): it compares each `<text>` element's bounding box with its
`<svg>`'s, writes the findings as JSON into a `<pre id="chronops-clip">`, and `--dump-dom` prints the
DOM after the script has run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

ARTIFACTS = REPO_ROOT / "artifacts"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

MEASURE = """
<script>
(function () {
  var out = [], svgs = document.querySelectorAll("svg");
  svgs.forEach(function (svg, i) {
    var box = svg.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) return;  // inside a closed <details>: not shown
    svg.querySelectorAll("text").forEach(function (t) {
      var r = t.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) return;
      var tol = 0.5;
      if (r.left < box.left - tol || r.right > box.right + tol || r.top < box.top - tol || r.bottom > box.bottom + tol) {
        out.push({svg: svg.id || svg.getAttribute("aria-label") || ("svg #" + i), text: t.textContent,
                  text_box: [r.left, r.top, r.right, r.bottom], svg_box: [box.left, box.top, box.right, box.bottom]});
      }
    });
  });
  var wrapped = [];  // result cells must stay on one line ("pas/s" once did)
  document.querySelectorAll(".r span").forEach(function (el) {
    if (el.getClientRects().length > 1) wrapped.push(el.textContent);
  });
  var n = 0; svgs.forEach(function (s) { n += s.querySelectorAll("text").length; });
  var pre = document.createElement("pre");
  pre.id = "chronops-clip";
  pre.textContent = JSON.stringify({svgs: svgs.length, texts: n, clipped: out, wrapped: wrapped});
  document.body.appendChild(pre);
})();
</script>
"""


def chromium() -> str:
    """A Chromium binary: CHRONOPS_CHROMIUM, one on PATH, or Debian's (installed by
    scripts/ensure-chromium.sh when we are root); skips the test when there is none."""
    explicit = os.environ.get("CHRONOPS_CHROMIUM")
    if explicit:
        return explicit
    found = next((b for b in map(shutil.which, CANDIDATES) if b), None)
    if found:
        return found
    script = REPO_ROOT / "scripts" / "ensure-chromium.sh"
    try:
        proc = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot install Chromium ({exc})")
    binary = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if proc.returncode != 0 or binary is None:
        pytest.skip(f"Chromium is not available and could not be installed: {proc.stderr.strip()[-300:]}")
    return binary


def browse(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chronops-chromium-") as profile:  # a new, empty profile
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip


def screenshot(binary: str, page: Path, name: str, *, width: int = 1100, height: int = 2400) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    result = browse(
        binary, "--hide-scrollbars", f"--window-size={width},{height}", f"--screenshot={shot}", page.as_uri()
    )
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    assert shot.stat().st_size > 10_000, f"{shot} looks blank"
    return shot


def measure(binary: str, html: str, work: Path, *, width: int = 1100) -> dict[str, Any]:
    """Open a copy of `html` with the measuring script; returns {svgs, texts, clipped: [...], wrapped: [...]}."""
    no_csp = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    copy = work / "measure.html"
    copy.write_text(no_csp.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = browse(
        binary, f"--window-size={width},2000", "--virtual-time-budget=2000", "--dump-dom", copy.as_uri()
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="chronops-clip">(.*?)</pre>', dom.stdout, flags=re.S)
    assert found, "the measuring script did not run"
    text = (
        found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )
    doc: dict[str, Any] = json.loads(text)
    return doc


def visible_text(binary: str, page: Path) -> str:
    """The page's DOM as Chromium built it, tags stripped: what a reader can find on it."""
    dom = browse(binary, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom.stdout))
