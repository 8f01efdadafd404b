"""Build the Jupyter Book offline: local MathJax, strict warnings, code-aware execution cache.

``build_book()`` (the ``workbench book`` command):

1. makes sure MathJax 3 is served from the book itself: npm's ``mathjax@3`` package is installed
   once into a cache folder (``$WORKBENCH_MATHJAX_CACHE`` or ``~/.cache/attention-workbench``) and
   its ``es5`` bundle copied to ``book/_mathjax/mathjax/``, which Sphinx publishes at the site root
   through ``html_extra_path`` (never under ``_static``);
2. invalidates the execution cache and the Sphinx doctrees when any ``.py`` file under
   ``workbench/`` or ``studies/`` changed since the last build (jupyter-cache only sees the
   notebook text, so library changes would otherwise leave stale outputs);
3. runs ``jupyter-book build -W -n --keep-going``, so a broken reference, an unknown citation or a
   failing cell fails the build.  The chapters' kernels talk to the build over CurveZMQ-encrypted
   sockets where jupyter_client and pyzmq support it (`encrypt_kernel_transport`), which also
   keeps ipykernel's "Kernel is running over TCP without encryption" warning out of the log.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "book"
MATHJAX_VERSION = "3"


def mathjax_cache() -> Path:
    return Path(os.environ.get("WORKBENCH_MATHJAX_CACHE", Path.home() / ".cache" / "attention-workbench"))


def ensure_mathjax(book: Path = BOOK, quiet: bool = False) -> Path:
    """Copy MathJax 3's es5 bundle into ``book/_mathjax/mathjax`` (installing it with npm once)."""
    target = book / "_mathjax" / "mathjax"
    if (target / "tex-chtml.js").exists():
        return target
    source = mathjax_cache() / "node_modules" / "mathjax" / "es5"
    if not (source / "tex-chtml.js").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed once to fetch MathJax 3 for the offline book (npm install mathjax@3); "
                               "install Node.js/npm or set WORKBENCH_MATHJAX_CACHE to a folder holding node_modules/mathjax")
        mathjax_cache().mkdir(parents=True, exist_ok=True)
        if not quiet:
            print(f"installing mathjax@{MATHJAX_VERSION} into {mathjax_cache()} (once)")
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(mathjax_cache()),
                        f"mathjax@{MATHJAX_VERSION}"], check=True, capture_output=quiet)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


def code_hash() -> str:
    """Digest of every .py file of the library and the studies, and of the book's preset."""
    from workbench.runner import source_digest

    files = [path for folder in ("workbench", "studies") for path in sorted((REPO / folder).rglob("*.py"))]
    preset = os.environ.get("WORKBENCH_BOOK_PRESET", "quick")
    return f"{source_digest(files)}-{preset}"


def invalidate_if_code_changed(book: Path = BOOK, quiet: bool = False) -> bool:
    """Drop the execution cache and doctrees if the library changed; return True if dropped."""
    build = book / "_build"
    stamp = build / ".code_hash"
    current = code_hash()
    if stamp.exists() and stamp.read_text().strip() == current:
        return False
    for sub in (".jupyter_cache", ".doctrees", "jupyter_execute"):
        shutil.rmtree(build / sub, ignore_errors=True)
    build.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current + "\n")
    if not quiet:
        print("library code changed since the last book build: execution cache cleared")
    return True


def encrypt_kernel_transport() -> bool:
    """Have jupyter_client provision CurveZMQ keys for every kernel this process starts.

    ipykernel 7 warns on stderr, once per executed notebook, when its sockets are plain TCP.
    Recent jupyter_client (8.10 here) can hand the kernel Curve keys:
    ``KernelManager.transport_encryption`` is ``"disabled"`` by default, and ``"auto"`` encrypts
    when the kernelspec declares ``curve`` support (ipykernel's does) and stays on plain TCP
    otherwise.  myst-nb and jupyter-cache create their kernel managers without a traitlets
    config, so the class default is the one place to set it.  Returns True when encryption was
    switched on; an older jupyter_client or a pyzmq without Curve leave things as they were.
    """
    try:
        import zmq
        from jupyter_client.manager import KernelManager
    except ImportError:
        return False
    trait = KernelManager.class_traits().get("transport_encryption")
    if trait is None or not zmq.has("curve"):
        return False
    trait.default_value = "auto"
    return True


def _jupyter_book_main() -> int:
    """Entry point of the build subprocess: ``jupyter-book`` with encrypted kernel sockets."""
    from jupyter_book.cli.main import main

    encrypt_kernel_transport()
    return main()


def build_book(book: Path | str = BOOK, *, clean: bool = False, quiet: bool = False) -> int:
    """Build ``book`` to ``book/_build/html``; returns the jupyter-book exit code."""
    book = Path(book)
    if clean:
        shutil.rmtree(book / "_build", ignore_errors=True)
    ensure_mathjax(book, quiet=quiet)
    invalidate_if_code_changed(book, quiet=quiet)
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, "-c", "import sys; from workbench.book import _jupyter_book_main; sys.exit(_jupyter_book_main())",
           "build", str(book), "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, env=env, capture_output=quiet, text=True)
    if proc.returncode != 0 and quiet:
        sys.stderr.write((proc.stdout or "")[-20000:] + (proc.stderr or "")[-10000:])
    if proc.returncode == 0:
        print(f"book built: {book / '_build' / 'html' / 'index.html'}")
    return proc.returncode
