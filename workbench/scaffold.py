"""``workbench new NAME``: a new study made from the template, in the one shape every study has.

It writes ``studies/<snake>/`` (``__init__``, ``config``, ``model``, ``theory``, ``simulate``,
``checks``, ``figures``, ``bench``, ``__main__``), ``tests/test_<snake>.py`` (a smoke run, member i
against run i, a negative control) and the chapter stub ``book/<snake>.md``, then lists the study in
``studies/__init__.py`` and the chapter in ``book/_toc.yml``.  The template is a working study
(uniform attention averages its values: E[y^2] = 1/T, against a hard max's 1) to be replaced piece
by piece with the paper's model, theory and experiments.
"""
from __future__ import annotations

import re
from pathlib import Path

from workbench.errors import WorkbenchInputError

TEMPLATE = Path(__file__).resolve().parent / "template"
STUDY_FILES = ("__init__", "__main__", "config", "model", "theory", "simulate", "checks", "figures", "bench")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def new_study(name: str, *, root: str | Path = ".", title: str | None = None) -> list[Path]:
    """Write the study ``name`` (kebab-case) into the checkout at ``root``; return the files written."""
    if not NAME_PATTERN.match(name):
        raise WorkbenchInputError(f"study name {name!r} must be kebab-case: lowercase letters and digits, "
                                  "words joined by '-' (e.g. 'induction-heads')")
    root = Path(root)
    snake = name.replace("-", "_")
    registry = root / "studies" / "__init__.py"
    if not registry.is_file():
        raise WorkbenchInputError(f"{root} has no studies/__init__.py: run `workbench new` from a checkout's root "
                                  "or pass --root")
    package = root / "studies" / snake
    targets = [package / f"{f}.py" for f in STUDY_FILES] + [root / "tests" / f"test_{snake}.py",
                                                           root / "book" / f"{snake}.md"]
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        raise WorkbenchInputError(f"study {name!r} exists already ({existing[0]}); choose another name")
    tokens = {"__NAME__": name, "__SNAKE__": snake,
              "__TITLE__": title or name.replace("-", " ").capitalize() + ": one claim, checked"}
    sources = [TEMPLATE / f"{f}.py.tmpl" for f in STUDY_FILES] + [TEMPLATE / "test.py.tmpl",
                                                                  TEMPLATE / "chapter.md.tmpl"]
    for source, target in zip(sources, targets):
        text = source.read_text()
        for token, value in tokens.items():
            text = text.replace(token, value)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    _register(registry, snake)
    toc = root / "book" / "_toc.yml"
    if toc.is_file():
        _add_chapter(toc, snake)
    return targets


def _register(registry: Path, snake: str) -> None:
    """Append ``snake`` to the ``STUDIES`` list of ``studies/__init__.py``."""
    text = registry.read_text()
    match = re.search(r"STUDIES(?:\s*:\s*[^=]+)?=\s*\[(?P<body>[^\]]*)\]", text)
    if match is None:
        raise WorkbenchInputError(f"{registry} has no STUDIES = [...] list to add the study to")
    body = match.group("body").rstrip()
    sep = "" if not body.strip() or body.endswith(",") else ","
    new_body = f"{body}{sep}\n    \"{snake}\",\n"
    registry.write_text(text[:match.start("body")] + new_body + text[match.end("body"):])


def _add_chapter(toc: Path, snake: str) -> None:
    """Add ``- file: snake`` to the chapters of ``_toc.yml``, before the appendix if there is one."""
    lines = toc.read_text().splitlines()
    entry = f"  - file: {snake}"
    at = next((i for i, l in enumerate(lines) if l.strip() == "- file: performance"), len(lines))
    lines.insert(at, entry)
    toc.write_text("\n".join(lines) + "\n")
