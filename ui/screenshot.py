"""Take docs/ui-screenshot.png: the UI answering a seed question, in headless Chromium.

    python -m ui.screenshot [--url http://127.0.0.1:7860] [--out docs/ui-screenshot.png]

Without --url a server is started on a temporary data dir (seeds/ indexed) and stopped after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from rag.localhost import free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What did Zelenskyy say about Crimea?"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def start_server(data_dir: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAG_API_KEY"}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def shoot(url: str, out: Path, question: str = QUESTION) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
        page.goto(url)
        page.wait_for_selector("#question textarea", timeout=60_000)
        page.fill("#question textarea", question)
        page.click("#ask")
        page.wait_for_selector("#chat .cite-card mark", timeout=60_000)
        page.wait_for_timeout(800)  # let the last streamed update settle
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="A running server (default: start one)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ui-screenshot.png")
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args()
    if args.url:
        shoot(args.url.rstrip("/"), args.out, args.question)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            url, proc = start_server(Path(tmp) / "data")
            try:
                shoot(url, args.out, args.question)
            finally:
                stop_process(proc)
    print(args.out)


if __name__ == "__main__":
    main()
