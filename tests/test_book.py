"""Build the whole book (at the smoke preset, to stay fast) and open it in headless Chromium: the
maths must be typeset by the local MathJax, every image must load, no request may fail or leave
the machine, no chapter may show the same figure twice, and nothing may overflow the text column
(no display equation wider than its box, no code block that scrolls sideways)."""
import hashlib
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from workbench.book import BOOK, build_book

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.book
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1280, "height": 900}
"""A laptop window with both sidebars shown: the narrowest text column on a desktop screen."""


def chapters() -> list[str]:
    import yaml
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for entry in toc["chapters"]]


@pytest.fixture(scope="module")
def built_book(tmp_path_factory, smoke_runs):
    root = tmp_path_factory.mktemp("book")
    book = root / "book"
    shutil.copytree(BOOK, book, ignore=shutil.ignore_patterns("_build", "_mathjax"))
    env = {"WORKBENCH_BOOK_PRESET": "smoke", "WORKBENCH_RUNS": str(smoke_runs)}   # shared smoke records
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code = build_book(book, quiet=True)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert code == 0, "jupyter-book build -W -n --keep-going failed (see output above)"
    return book / "_build" / "html"


def open_page(browser, url: str, requests: list, failed: list):
    """A tab at ``url`` with MathJax finished typesetting (pages without maths load no MathJax)."""
    tab = browser.new_page(viewport=VIEWPORT)
    tab.on("request", lambda r: requests.append(r.url))
    tab.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
    tab.goto(url, wait_until="load")
    if tab.evaluate("!!document.querySelector('script[src*=\"tex-chtml\"]')"):
        tab.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30000)
        tab.evaluate("MathJax.startup.promise")
    return tab


def image_digest(src: str) -> str:
    """sha256 of what an <img> shows: the file behind a file:// URL, or the data: URI itself."""
    if src.startswith("file:"):
        return hashlib.sha256(Path(unquote(urlparse(src).path)).read_bytes()).hexdigest()
    return hashlib.sha256(src.encode()).hexdigest()


LAYOUT_JS = """() => {
  const wide = [], scrolls = [];
  document.querySelectorAll('mjx-container[display]').forEach(m => {
    const math = m.querySelector('mjx-math');
    const box = m.getBoundingClientRect().width;
    const width = math ? math.getBoundingClientRect().width : box;
    if (width > box + 1 || m.scrollWidth > m.clientWidth + 1) {
      const label = m.closest('.math') ? m.closest('.math').id : '';
      wide.push(`${label || m.textContent.slice(0, 50)}: ${Math.round(width)} px in ${Math.round(box)} px`);
    }
  });
  document.querySelectorAll('.bd-article pre').forEach(p => {
    if (p.scrollWidth > p.clientWidth + 1) {
      const line = p.textContent.split('\\n').reduce((a, l) => l.length > a.length ? l : a, '');
      scrolls.push(`${p.scrollWidth} px in ${p.clientWidth} px: ${line.slice(0, 90)}`);
    }
  });
  return {wide, scrolls,
          images: Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0]),
          typeset: document.querySelectorAll('mjx-container').length,
          errors: document.querySelectorAll('mjx-merror, .MathJax_Error').length};
}"""


def test_every_chapter_is_built(built_book):
    for name in chapters():
        assert (built_book / f"{name}.html").exists(), name
    assert (built_book / "mathjax" / "tex-chtml.js").exists()
    assert not (built_book / "_static" / "mathjax").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("page", ["rank_collapse.html", "index.html"])
def test_page_renders_in_headless_chromium(built_book, page):
    from playwright.sync_api import sync_playwright

    requests, failed = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            layout = open_page(browser, (built_book / page).as_uri(), requests, failed).evaluate(LAYOUT_JS)
        finally:
            browser.close()
    assert not failed, failed
    assert all(u.startswith(("file://", "data:")) for u in requests), [u for u in requests if not u.startswith("file")]
    assert layout["errors"] == 0
    if page == "rank_collapse.html":
        assert layout["typeset"] >= 5, f"only {layout['typeset']} typeset formulas"
        images = layout["images"]
        assert len(images) >= 3 and all(ok for _, ok in images), images


RAW_MARKUP = ("{cite", "{eq}", "{glue", "{ref}", "{numref}", "{doc}", "```{", "{math}", ":::{")
"""MyST roles and directives: rendered, none of them survives as text on a page."""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")
def test_chapters_show_each_figure_once_and_fit_the_column(built_book):
    """Every page: images load, none is shown twice (same bytes), MathJax typesets without
    errors, no display equation is wider than its container, no code block (input or output)
    scrolls sideways at a 1280-pixel window, and no MyST markup is left raw."""
    from playwright.sync_api import sync_playwright

    problems: dict[str, list[str]] = {}
    requests, failed = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            for name in chapters():
                tab = open_page(browser, (built_book / f"{name}.html").as_uri(), requests, failed)
                layout = tab.evaluate(LAYOUT_JS)
                text = tab.inner_text("main") if tab.query_selector("main") else tab.inner_text("body")
                tab.close()
                found = [f"equation wider than its box: {w}" for w in layout["wide"]]
                found += [f"raw MyST markup in the rendered page: {m!r}" for m in RAW_MARKUP if m in text]
                found += [f"code block scrolls sideways: {s}" for s in layout["scrolls"]]
                found += [f"image does not load: {src}" for src, ok in layout["images"] if not ok]
                if layout["errors"]:
                    found.append(f"{layout['errors']} MathJax errors")
                seen: dict[str, str] = {}
                for src, _ in layout["images"]:
                    digest = image_digest(src)
                    if digest in seen:
                        found.append(f"image shown twice: {src[:80]} (same bytes as {seen[digest][:80]})")
                    seen.setdefault(digest, src)
                if found:
                    problems[name] = found
        finally:
            browser.close()
    assert not failed, failed
    assert not problems, "\n".join(f"{page}: {p}" for page, found in problems.items() for p in found)


def test_book_kernels_run_over_encrypted_sockets(capfd):
    """The build's kernels get CurveZMQ keys, so ipykernel's 'Kernel is running over TCP without
    encryption' warning (once per chapter) never reaches the build log."""
    import nbclient
    import nbformat
    from jupyter_client.manager import KernelManager

    from workbench.book import encrypt_kernel_transport

    trait = KernelManager.class_traits().get("transport_encryption")
    previous = trait.default_value if trait is not None else None
    try:
        if not encrypt_kernel_transport():
            pytest.skip("this jupyter_client or pyzmq cannot encrypt kernel sockets (nothing to silence)")
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
        nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    finally:
        if trait is not None:
            trait.default_value = previous
    assert nb.cells[0].outputs[0]["text"].strip() == "42"
    assert "without encryption" not in capfd.readouterr().err
