"""A book chapter as a clean Jupyter notebook (``workbench notebook STUDY [PATH]``).

The chapters are MyST-markdown notebooks: opened as they are in JupyterLab (``jupytext --to
ipynb``) they execute, but their text shows the Sphinx markup raw.  `export_notebook` reads a
chapter with jupytext and rewrites every markdown cell as plain Markdown and LaTeX, the way the
book renders it:

- citations ``{cite:t}`key``` / ``{cite:p}`key``` become author-year text from
  ``book/references.bib``, and the ``{bibliography}`` directive the list of the works cited;
- labelled equations (``{math}`` with ``:label:``, ``$$ ... $$ (label)``) are numbered in the
  order the book numbers them, with ``\\tag{n}``, and ``{eq}`label``` becomes ``(n)``;
- admonitions become block quotes with a bold title, figures and images Markdown images,
  ``{list-table}`` a Markdown table, ``{code-block}`` a fenced block, ``{ref}``/``{numref}``/
  ``{doc}`` their text, and ``(label)=`` targets and ``%`` comments disappear;
- a value the book *glues* into its text (``{glue:md} name`` and the inline ``{glue}`` roles) is
  shown by a code cell ``glue.show("name")`` where the text uses it; the chapter's
  ``from myst_nb import glue`` becomes a `Glue` that keeps the values (and makes the MyST markup
  of a glued Markdown value plain too);
- cell tags that only steer the book (``remove-input``, ``hide-cell``, ...) are dropped and their
  code kept.

The converter is general MyST, not tuned to the current chapters: an unknown role becomes its
text, an unknown directive its body (a block quote with a bold title when it has one).
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

from workbench.errors import WorkbenchInputError

#: The book's sources (chapters, references.bib), next to the `workbench` package.
BOOK_DIR = Path(__file__).resolve().parent.parent / "book"

#: Cell tags that steer only the book's rendering; an exported notebook shows every cell.
BOOK_TAGS = frozenset({"remove-input", "remove-output", "remove-cell", "hide-input", "hide-output", "hide-cell",
                       "remove-stderr", "remove-stdout", "full-width", "margin", "output_scroll", "scroll-input",
                       "scroll-output", "thebe-init"})

#: Directives rendered as a block quote with a bold title (the admonitions and their kin).
ADMONITIONS = {"note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important", "warning": "Warning",
               "caution": "Caution", "attention": "Attention", "danger": "Danger", "error": "Error",
               "seealso": "See also", "todo": "To do", "versionadded": "New in version",
               "versionchanged": "Changed in version", "deprecated": "Deprecated since version"}

#: Directives that render to nothing outside Sphinx.
DROPPED = frozenset({"tableofcontents", "toctree", "contents", "index", "only", "rubric-end"})


def export_notebook(study: str | ModuleType, path: str | Path | None = None) -> Path:
    """Write ``study``'s book chapter as a clean .ipynb and return its path.

    ``path`` defaults to ``./<snake_name>.ipynb``; a directory gets ``<snake_name>.ipynb`` inside
    it.  An unknown study raises `UnknownStudyError` (exit 2), a study without a chapter
    `WorkbenchInputError`.
    """
    import nbformat

    snake = _study_snake_name(study)
    chapter = BOOK_DIR / f"{snake}.md"
    if not chapter.is_file():
        raise WorkbenchInputError(f"study {snake.replace('_', '-')!r} has no book chapter (no {chapter})")
    target = Path(path) if path is not None else Path.cwd() / f"{snake}.ipynb"
    if target.is_dir():
        target = target / f"{snake}.ipynb"
    target = target.resolve()
    nb = chapter_notebook(chapter, out_dir=target.parent, study=snake.replace("_", "-"))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, target)
    return target


def chapter_notebook(chapter: str | Path, *, out_dir: str | Path | None = None, study: str | None = None):
    """The clean notebook (an `nbformat.NotebookNode`) of the MyST chapter at ``chapter``;
    relative image paths are rewritten relative to ``out_dir`` (default: the chapter's folder)."""
    import jupytext
    import nbformat
    from nbformat import v4

    chapter = Path(chapter).resolve()
    source = jupytext.read(str(chapter), fmt="md:myst")
    converter = MystConverter.for_chapter(chapter, out_dir=out_dir)
    converter.number([c.source for c in source.cells if c.cell_type == "markdown"])
    glued_at = {name: i for i, c in enumerate(source.cells) if c.cell_type == "code"
                for name in _glued_names(c.source)}

    cells: list = []
    pending: dict[int, list] = {}  # show cells waiting for the code cell that glues their value
    uses_glue = False

    def place(show: Show, index: int) -> None:
        at = glued_at.get(show.name, -1)
        if at < index:  # the value is computed above: show it here
            cells.append(_show_cell(show))
        else:  # the book glues it further down: show it right after that cell
            pending.setdefault(at, []).append(_show_cell(show))

    for index, cell in enumerate(source.cells):
        if cell.cell_type == "code":
            code, rewrote = _rewrite_glue_import(cell.source, study)
            uses_glue |= rewrote
            cells.append(v4.new_code_cell(code, metadata=_clean_metadata(cell.metadata)))
            cells.extend(pending.pop(index, []))
        elif cell.cell_type == "markdown":
            inline: list[Show] = []
            for piece in converter.convert(cell.source, inline_shows=inline):
                if isinstance(piece, Show):
                    place(piece, index)
                elif piece.strip():
                    cells.append(v4.new_markdown_cell(piece.strip("\n"),
                                                      metadata=_clean_metadata(cell.metadata)))
            for show in inline:
                place(show, index)
        else:  # raw cells pass through
            cells.append(v4.new_raw_cell(cell.source, metadata=_clean_metadata(cell.metadata)))
    for rest in pending.values():
        cells.extend(rest)

    if converter.shows and not uses_glue:  # the chapter glues without myst_nb's import: define glue first
        first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
        cells.insert(first_code, v4.new_code_cell(_glue_setup(study)))
    title_at = 1 if cells and cells[0].cell_type == "markdown" and cells[0].source.startswith("# ") else 0
    cells.insert(title_at, v4.new_markdown_cell(_provenance(chapter, study)))

    nb = v4.new_notebook(cells=cells)
    nb.metadata = {k: v for k, v in source.metadata.items() if k != "jupytext"}
    nb.metadata.setdefault("kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    nb.metadata.setdefault("language_info", {"name": "python"})
    nbformat.validate(nb)
    return nb


# --------------------------------------------------------------------------- glued values
class Glue:
    """myst_nb's ``glue`` for an exported chapter.

    ``glue(name, value, display=False)`` keeps ``value`` under ``name`` (and displays it unless
    ``display=False``, as myst_nb does); ``glue.show(name)`` displays it where the book's text
    used it.  A glued Markdown value written for the book (MyST roles such as ``{eq}``) is shown
    with its markup made plain, numbered as in the chapter of ``study`` when the book is present.
    """

    def __init__(self, study: str | None = None):
        self.study = study
        self.values: dict[str, Any] = {}
        self._converter: MystConverter | None = None

    def __call__(self, name: str, variable: Any, display: bool = True) -> None:
        self.values[name] = variable
        if display:
            from IPython.display import display as show
            show(variable)

    def value(self, name: str, fmt: str | None = None) -> Any:
        """The value glued under ``name`` (formatted with ``fmt`` as text, when given), made plain."""
        if name not in self.values:
            raise KeyError(f"nothing is glued under {name!r} yet: run the cell that calls glue({name!r}, ...) first"
                           f" (glued so far: {', '.join(self.values) or 'none'})")
        value = self.values[name]
        if fmt:
            from IPython.display import Markdown
            return Markdown(format(value, fmt))
        text = getattr(value, "data", None)
        if isinstance(text, str) and type(value).__name__ == "Markdown":
            from IPython.display import Markdown
            return Markdown("".join(p for p in self.converter.convert(text) if isinstance(p, str)))
        return value

    def show(self, name: str, fmt: str | None = None) -> None:
        """Display the value glued under ``name``."""
        from IPython.display import display

        display(self.value(name, fmt))

    @property
    def converter(self) -> MystConverter:
        if self._converter is None:
            chapter = BOOK_DIR / f"{(self.study or '').replace('-', '_')}.md"
            if self.study and chapter.is_file():
                import jupytext
                self._converter = MystConverter.for_chapter(chapter)
                nb = jupytext.read(str(chapter), fmt="md:myst")
                self._converter.number([c.source for c in nb.cells if c.cell_type == "markdown"])
            else:
                self._converter = MystConverter(bib=_read_bib(BOOK_DIR / "references.bib"))
        return self._converter


@dataclass
class Show:
    """A place where the text shows a glued value: a code cell ``glue.show(name)`` goes there."""

    name: str
    fmt: str | None = None


def _show_cell(show: Show):
    from nbformat import v4

    args = repr(show.name) if show.fmt is None else f"{show.name!r}, fmt={show.fmt!r}"
    return v4.new_code_cell(f"glue.show({args})")


_GLUE_CALL = re.compile(r"""\bglue\(\s*(?P<q>['"])(?P<name>.+?)(?P=q)""")
_MYST_NB_IMPORT = re.compile(
    r"^(?P<indent>[ \t]*)from[ \t]+myst_nb[ \t]+import[ \t]+(?P<names>[^\n#]+?)[ \t]*(?:#.*)?$", re.MULTILINE)


def _glued_names(code: str) -> list[str]:
    return [m.group("name") for m in _GLUE_CALL.finditer(code)]


def _glue_setup(study: str | None, indent: str = "") -> str:
    return (f"{indent}from workbench.notebook import Glue\n"
            f"{indent}glue = Glue({study!r})  # keeps what the book glues into its text; glue.show(name) shows it")


def _rewrite_glue_import(code: str, study: str | None) -> tuple[str, bool]:
    """Replace ``from myst_nb import glue`` by a `Glue`; other names stay imported from myst_nb."""
    rewrote = False

    def repl(m: re.Match) -> str:
        nonlocal rewrote
        names = [n.strip() for n in m.group("names").strip("() ").split(",") if n.strip()]
        if "glue" not in names:
            return m.group(0)
        rewrote = True
        rest = [n for n in names if n != "glue"]
        keep = f"{m.group('indent')}from myst_nb import {', '.join(rest)}\n" if rest else ""
        return keep + _glue_setup(study, m.group("indent"))

    return _MYST_NB_IMPORT.sub(repl, code), rewrote


def _clean_metadata(metadata: dict) -> dict:
    out = {k: v for k, v in dict(metadata).items() if k not in ("mystnb", "jupytext")}
    tags = [t for t in out.pop("tags", []) if t not in BOOK_TAGS]
    if tags:
        out["tags"] = tags
    return out


def _provenance(chapter: Path, study: str | None) -> str:
    command = f"`workbench notebook {study}`" if study else "`workbench notebook`"
    return (f"> Exported from the book's chapter `{chapter.parent.name}/{chapter.name}` by {command}. "
            "The cells run the study through the run cache (`$WORKBENCH_RUNS`, else `runs/`) at the "
            "`quick` preset, or at `$WORKBENCH_BOOK_PRESET` when it is set.")


def _study_snake_name(study: str | ModuleType) -> str:
    from workbench.registry import get_study, study_modules

    if isinstance(study, ModuleType):
        return study.__name__.rsplit(".", 1)[-1]
    snake = study.replace("-", "_")
    if snake not in study_modules():
        get_study(study)  # raises UnknownStudyError with the list of studies
    return snake


# --------------------------------------------------------------------------- bibliography
@dataclass
class BibEntry:
    key: str
    kind: str
    fields: dict[str, str]

    @property
    def last_names(self) -> list[str]:
        return [_last_name(a) for a in _split_authors(self.fields.get("author") or self.fields.get("editor", ""))]

    @property
    def year(self) -> str:
        return self.fields.get("year", "n.d.")

    @property
    def authors_short(self) -> str:
        names = self.last_names
        if not names:
            return self.key
        if len(names) == 1:
            return names[0]
        if len(names) == 2:
            return f"{names[0]} and {names[1]}"
        return f"{names[0]} et al."

    def reference(self) -> str:
        """One entry of the reference list: Authors (year). *Title*. Venue."""
        authors = _split_authors(self.fields.get("author", ""))
        people = ", ".join(_initialled(a) for a in authors[:-1])
        people = f"{people} and {_initialled(authors[-1])}" if len(authors) > 1 else (
            _initialled(authors[0]) if authors else self.key)
        venue = self.fields.get("booktitle") or self.fields.get("journal") or self.fields.get("publisher") or ""
        extra = [venue] if venue else []
        if self.fields.get("volume"):
            extra.append(f"vol. {self.fields['volume']}")
        if self.fields.get("pages"):
            extra.append(f"pp. {self.fields['pages'].replace('--', '–')}")
        eprint = self.fields.get("eprint")
        if eprint and "arxiv" in (self.fields.get("archiveprefix", "") + venue).lower() and eprint not in venue:
            extra.append(f"arXiv:{eprint}")
        tail = f" {', '.join(extra)}." if extra else ""
        return f"{people} ({self.year}). *{self.fields.get('title', self.key)}*.{tail}"


def _read_bib(path: Path) -> dict[str, BibEntry]:
    if not path.is_file():
        return {}
    return {e.key: e for e in parse_bibtex(path.read_text(encoding="utf-8"))}


def parse_bibtex(text: str) -> Iterator[BibEntry]:
    """The entries of a BibTeX file (fields lower-cased, LaTeX accents and braces made plain)."""
    field_start, comma = re.compile(r"\s*(\w[\w-]*)\s*=\s*"), re.compile(r"\s*,")
    for m in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        kind = m.group(1).lower()
        if kind in ("comment", "preamble", "string"):
            continue
        body, _ = _balanced(text, text.index("{", m.start()))
        pos = body.index(",") + 1
        fields: dict[str, str] = {}
        while (f := field_start.match(body, pos)) is not None:
            pos = f.end()
            if body[pos:pos + 1] == "{":
                value, pos = _balanced(body, pos)
            elif body[pos:pos + 1] == '"':
                end = body.find('"', pos + 1)
                end = len(body) if end < 0 else end
                value, pos = body[pos + 1:end], end + 1
            else:
                bare = re.compile(r"[^,}\s]*").match(body, pos)
                value, pos = bare.group(0), bare.end()
            fields[f.group(1).lower()] = _plain_latex(value)
            c = comma.match(body, pos)
            if c is None:
                break
            pos = c.end()
        yield BibEntry(m.group(2), kind, fields)


def _balanced(text: str, start: int) -> tuple[str, int]:
    """The text inside the brace group opening at ``text[start]``, and the index after it."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif text[i] == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[start + 1:i], i + 1
    return text[start + 1:], len(text)


_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304",
            ".": "\u0307", "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328"}
_LETTERS = {"ss": "ß", "o": "ø", "O": "Ø", "ae": "æ", "AE": "Æ", "aa": "å", "AA": "Å", "l": "ł", "L": "Ł", "i": "ı"}


def _plain_latex(value: str) -> str:
    s = re.sub(r"\\([`'^\"~=.]|[uvHck](?=[\s{]))\s*\{?\s*([A-Za-z\\]i?)\s*\}?",
               lambda m: (("ı" if m.group(2) == "\\i" else m.group(2)) + _ACCENTS[m.group(1)]), value)
    s = re.sub(r"\\(ss|ae|AE|aa|AA|o|O|l|L)\b\s*", lambda m: _LETTERS[m.group(1)], s)
    s = s.replace(r"\&", "&").replace(r"\%", "%").replace(r"\_", "_").replace("~", "\u00a0").replace("--", "–")
    s = s.replace("{", "").replace("}", "")
    return unicodedata.normalize("NFC", re.sub(r"\s+", " ", s).strip())


def _split_authors(authors: str) -> list[str]:
    return [a.strip() for a in re.split(r"\s+and\s+", authors) if a.strip()]


def _last_name(author: str) -> str:
    if "," in author:
        return author.split(",")[0].strip()
    parts = author.split()
    # "Johannes von Oswald": the lower-case particles belong to the last name
    i = next((k for k, p in enumerate(parts[:-1]) if p[:1].islower()), len(parts) - 1)
    return " ".join(parts[i:])


def _initialled(author: str) -> str:
    last = _last_name(author)
    first = author.split(",", 1)[1] if "," in author else author[: max(0, len(author) - len(last))]
    initials = " ".join("-".join(f"{q[0]}." for q in p.split("-") if q[:1].isalpha())  # Jean-Baptiste: J.-B.
                        for p in first.split() if p[:1].isalpha())
    return f"{last}, {initials}" if initials else last


# --------------------------------------------------------------------------- MyST -> Markdown
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,}|:{3,})[ \t]*(?P<info>.*?)[ \t]*$")
_DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[A-Za-z][\w:.+-]*)\}[ \t]*(?P<arg>.*)$")
_TARGET = re.compile(r"^[ \t]*\((?P<label>[^()\s]+)\)=[ \t]*$")
_COMMENT = re.compile(r"^[ \t]*%")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(?P<title>.+?)[ \t#]*$")
_DOLLAR_LABELLED = re.compile(r"\$\$(?P<body>(?:(?!\$\$).)+?)\$\$[ \t]*\((?P<label>[^()\s]+)\)", re.DOTALL)
_CODE_SPAN = re.compile(r"(?<!`)(?P<ticks>`+)(?!`)(?P<body>(?:(?!\n[ \t]*\n).)+?)(?<!`)(?P=ticks)(?!`)", re.DOTALL)
_ROLE_NAME = re.compile(r"\{(?P<name>[A-Za-z][\w:.+-]*)\}$")
_TITLED = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>\s*$", re.DOTALL)


@dataclass
class MystConverter:
    """Turns MyST Markdown into plain Markdown and LaTeX (see the module docstring).

    `number` first walks the chapter's markdown to number its labelled equations and figures and
    to title its ``(label)=`` targets; `convert` then rewrites one cell.
    """

    bib: dict[str, BibEntry] = field(default_factory=dict)
    book_dir: Path | None = None
    out_dir: Path | None = None
    equations: dict[str, int] = field(default_factory=dict)
    figures: dict[str, int] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    cited: list[str] = field(default_factory=list)
    shows: list[Show] = field(default_factory=list)
    _numbering: bool = field(default=False, repr=False)

    @classmethod
    def for_chapter(cls, chapter: Path, *, out_dir: str | Path | None = None) -> MystConverter:
        book = chapter.parent
        return cls(bib=_read_bib(book / "references.bib"), book_dir=book,
                   out_dir=Path(out_dir).resolve() if out_dir is not None else book)

    def number(self, sources: list[str]) -> None:
        """Number the equations and figures of ``sources`` (a chapter's markdown cells, in order)."""
        self._numbering = True
        try:
            for s in sources:
                self.convert(s)
        finally:
            self._numbering = False
        self.cited.clear()
        self.shows.clear()

    # ----- blocks
    def convert(self, text: str, inline_shows: list[Show] | None = None) -> list[str | Show]:
        """Plain Markdown for one cell's MyST; a `Show` marks where a glued value is displayed.
        Values glued by inline roles are appended to ``inline_shows``."""
        out: list[str | Show] = []
        inline = inline_shows if inline_shows is not None else []
        for piece in self._blocks(text.splitlines(), inline):
            if isinstance(piece, Show) or not out or isinstance(out[-1], Show):
                out.append(piece)
            else:
                out[-1] += piece
        return out

    def plain(self, text: str) -> str:
        """``convert`` for text that cannot hold a glued value (a directive's title, a caption)."""
        return "".join(p for p in self.convert(text) if isinstance(p, str)).strip("\n")

    def _blocks(self, lines: list[str], inline: list[Show]) -> Iterator[str | Show]:
        prose: list[str] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            fence = _FENCE.match(line)
            if fence:
                yield self._prose("\n".join(prose), inline)
                prose = []
                end = _closing(lines, i, fence)
                body = [_dedent(l, fence.group("indent")) for l in lines[i + 1:end]]
                directive = _DIRECTIVE_INFO.match(fence.group("info"))
                if directive:
                    yield from self._directive(directive.group("name"), directive.group("arg"), body,
                                               fence.group("indent"), inline)
                else:  # ordinary fenced code: verbatim
                    yield "\n".join(lines[i:end + 1]) + "\n"
                i = end + 1
                continue
            target = _TARGET.match(line)
            if target:
                title = next((_HEADING.match(l).group("title") for l in lines[i + 1:i + 3] if _HEADING.match(l)), None)
                if title is not None and self._numbering:
                    self.targets.setdefault(target.group("label"), title)
                i += 1
                continue
            if _COMMENT.match(line) and not _in_display_math(prose):
                i += 1
                continue
            prose.append(line)
            i += 1
        yield self._prose("\n".join(prose), inline)

    def _directive(self, name: str, arg: str, body: list[str], indent: str,
                   inline: list[Show]) -> Iterator[str | Show]:
        options, body = _options(body)
        text = "\n".join(body)
        kind = name.lower()
        pad = lambda s: "\n".join(indent + l if l else l for l in s.split("\n"))  # noqa: E731
        if kind in ("math", "amsmath"):
            label = options.get("label") or options.get("name")
            yield pad(self._display_math(text, label)) + "\n"
        elif kind.startswith("glue"):
            target = arg.strip() or text.strip()
            if target:
                show = Show(target)
                self.shows.append(show)
                yield show
            if kind == "glue:figure" and text.strip():
                yield pad(self.plain(text)) + "\n"
        elif kind in ADMONITIONS or kind in ("admonition", "dropdown", "topic", "sidebar", "margin", "card",
                                             "epigraph", "pull-quote", "highlights", "aside", "prf:theorem",
                                             "prf:lemma", "prf:proof", "prf:definition", "prf:remark"):
            default = kind.split(":")[-1].capitalize() if kind.startswith("prf:") else ""
            title = self.plain(arg) if arg.strip() else ADMONITIONS.get(kind, default)
            yield pad(_quote(title, self._inner(body, inline))) + "\n"
        elif kind in ("figure", "image"):
            alt = options.get("alt") or (self.plain(text).split("\n")[0] if text.strip() else "")
            image = f"![{alt}]({self._image_path(arg.strip())})"
            label = options.get("name")
            if kind == "figure" and label and self._numbering:
                self.figures.setdefault(label, len(self.figures) + 1)
            caption = self.plain(text) if kind == "figure" and text.strip() else ""
            number = self.figures.get(label) if label else None
            lead = f"**Figure {number}.** " if number else ""
            yield pad(image + (f"\n\n{lead}{caption}" if caption or lead else "")) + "\n"
        elif kind in ("code-block", "code", "sourcecode", "code-cell"):
            tick = "````" if "```" in text else "```"
            yield pad(f"{tick}{arg.strip()}\n{text}\n{tick}") + "\n"
        elif kind == "list-table":
            yield pad(self._list_table(body, arg, options)) + "\n"
        elif kind == "table":
            caption = f"**{self.plain(arg)}**\n\n" if arg.strip() else ""
            yield pad(caption + self._inner(body, inline)) + "\n"
        elif kind == "bibliography":
            yield pad(self._bibliography()) + "\n"
        elif kind in DROPPED:
            yield ""
        elif kind == "raw":
            yield pad(text) + "\n" if arg.strip().lower() in ("html", "markdown", "md") else ""
        elif kind == "eval-rst":
            yield pad(f"```rst\n{text}\n```") + "\n"
        else:  # an unknown directive: its body, under its title if it has one
            inner = self._inner(body, inline)
            yield pad(_quote(self.plain(arg), inner) if arg.strip() else inner) + "\n"

    def _inner(self, body: list[str], inline: list[Show]) -> str:
        """A directive's converted content; a value glued inside it is shown after the cell."""
        out = []
        for piece in self._blocks(body, inline):
            if isinstance(piece, Show):
                inline.append(piece)
            else:
                out.append(piece)
        return "".join(out).strip("\n")

    def _display_math(self, text: str, label: str | None) -> str:
        """LaTeX for display math as Sphinx writes it for MathJax (a part with a line break goes in
        ``split``, several parts in ``aligned``), numbered with ``\\tag`` when labelled."""
        parts = [p.strip() for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
        wrap = lambda p: f"\\begin{{split}}{p}\\end{{split}}" if "\\\\" in p else p  # noqa: E731
        if len(parts) > 1:
            latex = "\\begin{aligned}\n" + " \\\\\n".join(wrap(p) for p in parts) + "\n\\end{aligned}"
        else:
            latex = wrap(parts[0]) if parts else ""
        tag = ""
        if label:
            if self._numbering:
                self.equations.setdefault(label, len(self.equations) + 1)
            if label in self.equations:
                tag = f"\n\\tag{{{self.equations[label]}}}"
        return f"$$\n{latex}{tag}\n$$"

    def _list_table(self, body: list[str], title: str, options: dict[str, str]) -> str:
        rows: list[list[str]] = []
        for line in body:
            row = re.match(r"^[*-][ \t]+-[ \t]*(.*)$", line)
            cell = re.match(r"^[ \t]+-[ \t]*(.*)$", line)
            if row:
                rows.append([row.group(1)])
            elif cell and rows:
                rows[-1].append(cell.group(1))
            elif line.strip() and rows and rows[-1]:
                rows[-1][-1] += " " + line.strip()
        rows = [[self.plain(c).replace("\n", " ").replace("|", "\\|") for c in r] for r in rows]
        if not rows:
            return ""
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        header_rows = int(options.get("header-rows", "0") or 0)
        header, rest = (rows[0], rows[1:]) if header_rows >= 1 else ([""] * width, rows)
        table = ["| " + " | ".join(header) + " |", "|" + "---|" * width] + ["| " + " | ".join(r) + " |" for r in rest]
        caption = f"**{self.plain(title)}**\n\n" if title.strip() else ""
        return caption + "\n".join(table)

    def _bibliography(self) -> str:
        keys = [k for k in dict.fromkeys(self.cited) if k in self.bib]
        keys.sort(key=lambda k: (self.bib[k].last_names[:1] or [k], self.bib[k].year))
        missing = [k for k in dict.fromkeys(self.cited) if k not in self.bib]
        return "\n".join([f"- {self.bib[k].reference()}" for k in keys] + [f"- [{k}]" for k in missing])

    def _image_path(self, path: str) -> str:
        if not path or re.match(r"^[a-z][a-z0-9+.-]*:", path) or path.startswith("/") or self.book_dir is None:
            return path
        source = (self.book_dir / path).resolve()
        return Path(os.path.relpath(source, self.out_dir or self.book_dir)).as_posix()

    # ----- inline
    def _prose(self, text: str, inline: list[Show]) -> str:
        if not text:
            return ""
        text = _DOLLAR_LABELLED.sub(lambda m: self._display_math(m.group("body").strip("\n"), m.group("label")), text)
        out, pos = [], 0
        for span in _CODE_SPAN.finditer(text):
            before = text[pos:span.start()]
            role = _ROLE_NAME.search(before)
            if role:
                out.append(before[:role.start()])
                out.append(self._role(role.group("name"), span.group("body"), inline))
            else:
                out.append(text[pos:span.end()])
            pos = span.end()
        out.append(text[pos:])
        return "".join(out) + "\n"

    def _role(self, name: str, content: str, inline: list[Show]) -> str:
        kind = name.lower()
        titled = _TITLED.match(content)
        title, target = (titled.group("title"), titled.group("target")) if titled else ("", content.strip())
        if kind.startswith("cite"):
            return self._cite(kind, target)
        if kind == "eq":
            n = self.equations.get(target)
            return f"({n})" if n is not None else f"({target})"
        if kind in ("ref", "numref", "doc", "any", "download", "term", "external"):
            if title:
                label = self.equations.get(target) or self.figures.get(target) or target
                return title.replace("%s", str(label)).replace("{number}", str(label))
            if kind == "numref" and target in self.figures:
                return f"Figure {self.figures[target]}"
            return self.targets.get(target, target)
        if kind.startswith("glue"):
            glue_name, _, fmt = target.partition(":")
            show = Show(glue_name, fmt or None)
            self.shows.append(show)
            inline.append(show)
            return f"*[{glue_name}, shown below]*"
        if kind == "math":
            return f"${content}$"
        if kind in ("sub", "sup", "kbd"):
            return f"<{kind}>{content}</{kind}>"
        if kind == "abbr":
            return re.sub(r"\s*\(.*\)\s*$", "", content)
        if kind in ("emphasis", "dfn"):
            return f"*{content}*"
        if kind == "strong":
            return f"**{content}**"
        if ":" in kind or kind in ("code", "file", "command", "envvar", "samp", "literal", "program", "option",
                                   "func", "class", "meth", "mod", "attr", "obj", "data", "exc"):
            return f"`{(title or target).lstrip('~!')}`"
        return title or target

    def _cite(self, kind: str, keys: str) -> str:
        keys_list = [k.strip() for k in keys.split(",") if k.strip()]
        self.cited.extend(keys_list)
        textual = kind in ("cite:t", "cite:ts", "cite:ct", "cite:cts", "cite:author", "cite:authors",
                           "cite:authorpar")
        parts = []
        for key in keys_list:
            entry = self.bib.get(key)
            if entry is None:
                parts.append(f"[{key}]")
            elif kind in ("cite:year", "cite:yearpar"):
                parts.append(entry.year)
            elif kind in ("cite:author", "cite:authors"):
                parts.append(entry.authors_short)
            elif textual:
                parts.append(f"{entry.authors_short} ({entry.year})")
            else:
                parts.append(f"{entry.authors_short}, {entry.year}")
        if textual or kind in ("cite:year",):
            return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] if parts else ""
        known = [p for p in parts if not p.startswith("[")]
        unknown = [p for p in parts if p.startswith("[")]
        return " ".join(([f"({'; '.join(known)})"] if known else []) + unknown)


def _quote(title: str, text: str) -> str:
    """``text`` as a Markdown block quote, under a bold ``title`` when there is one."""
    lines = ([f"**{title}**", ""] if title else []) + text.split("\n")
    return "\n".join(">" + (" " + line if line else "") for line in lines)


def _closing(lines: list[str], start: int, fence: re.Match) -> int:
    """The index of the line closing the fence opened at ``lines[start]`` (the last line if none)."""
    char, length = fence.group("fence")[0], len(fence.group("fence"))
    close = re.compile(rf"^[ \t]*{re.escape(char)}{{{length},}}[ \t]*$")
    for j in range(start + 1, len(lines)):
        if close.match(lines[j]):
            return j
    return len(lines)


def _dedent(line: str, indent: str) -> str:
    return line[len(indent):] if indent and line.startswith(indent) else line


def _options(body: list[str]) -> tuple[dict[str, str], list[str]]:
    """A directive's options (``:key: value`` lines or a ``---`` YAML block) and its content."""
    options: dict[str, str] = {}
    if body and body[0].strip() == "---":
        end = next((j for j in range(1, len(body)) if body[j].strip() == "---"), None)
        if end is not None:
            for line in body[1:end]:
                key, _, value = line.partition(":")
                if key.strip():
                    options[key.strip()] = value.strip()
            return options, body[end + 1:]
    i = 0
    while i < len(body):
        m = re.match(r"^[ \t]*:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$", body[i])
        if not m:
            break
        options[m.group("key")] = m.group("value")
        i += 1
    return options, body[i:]


def _in_display_math(prose: list[str]) -> bool:
    return sum(l.count("$$") for l in prose) % 2 == 1
