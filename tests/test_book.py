"""Build the whole book (at the smoke preset, to stay fast) and open the rank-collapse chapter in
headless Chromium: the maths must be typeset by the local MathJax, every image must load, and no
request may fail or leave the machine."""
import os
import shutil
from pathlib import Path

import pytest

from workbench.book import BOOK, build_book

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.book


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    book = root / "book"
    shutil.copytree(BOOK, book, ignore=shutil.ignore_patterns("_build", "_mathjax"))
    env = {"WORKBENCH_BOOK_PRESET": "smoke", "WORKBENCH_RUNS": str(root / "runs")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code = build_book(book, quiet=True)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert code == 0, "jupyter-book build -W -n --keep-going failed (see output above)"
    return book / "_build" / "html"


def test_every_chapter_is_built(built_book):
    import yaml
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    for entry in toc["chapters"]:
        assert (built_book / f"{entry['file']}.html").exists(), entry["file"]
    assert (built_book / "mathjax" / "tex-chtml.js").exists()
    assert not (built_book / "_static" / "mathjax").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("page", ["rank_collapse.html", "index.html"])
def test_page_renders_in_headless_chromium(built_book, page):
    from playwright.sync_api import sync_playwright

    url = (built_book / page).as_uri()
    requests, failed = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            tab = browser.new_page()
            tab.on("request", lambda r: requests.append(r.url))
            tab.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            tab.goto(url, wait_until="load")
            tab.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30000)
            tab.evaluate("MathJax.startup.promise")
            typeset = tab.evaluate("document.querySelectorAll('mjx-container').length")
            errors = tab.evaluate("document.querySelectorAll('mjx-merror, .MathJax_Error').length")
            images = tab.evaluate("Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0])")
        finally:
            browser.close()
    assert not failed, failed
    assert all(u.startswith(("file://", "data:")) for u in requests), [u for u in requests if not u.startswith("file")]
    assert errors == 0
    if page == "rank_collapse.html":
        assert typeset >= 5, f"only {typeset} typeset formulas"
        assert len(images) >= 3 and all(ok for _, ok in images), images
