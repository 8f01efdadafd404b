"""The notebook user's side: `workbench.run` (the cached entry point) and `workbench notebook`
(a book chapter exported as a clean .ipynb, without raw MyST markup, that executes)."""
import re
from pathlib import Path

import pytest

import workbench
from workbench.errors import UnknownStudyError
from workbench.notebook import BOOK_DIR, Glue, MystConverter, chapter_notebook, export_notebook, parse_bibtex
from workbench.registry import study_names

REPO = Path(__file__).resolve().parent.parent

#: MyST that must not survive into an exported notebook's markdown cells.
RAW_MYST = re.compile(r"\{cite|\{eq\}|\{glue|\{ref\}|\{numref\}|\{doc\}|^[ \t]*(`{3,}|~{3,}|:{3,})[ \t]*\{"
                      r"|^[ \t]*\([^()\s]+\)=[ \t]*$", re.MULTILINE)


# --------------------------------------------------------------------------- workbench.run
def test_workbench_run_caches_the_record(toy_study, monkeypatch):
    calls = []
    real_run = toy_study.run
    monkeypatch.setattr(toy_study, "run", lambda cfg, **kw: calls.append(cfg) or real_run(cfg, **kw))

    cfg = toy_study.Config.smoke()
    first = workbench.run("toy", cfg)
    second = workbench.run(toy_study, cfg)
    assert len(calls) == 1, "the second call must load the saved record, not recompute"
    assert second.config == first.config and (second["loss"] == first["loss"]).all()
    assert second.meta["code_fingerprint"] == first.meta["code_fingerprint"]

    workbench.run("toy", cfg.replace(lr=0.05))  # another config: computed
    workbench.run("toy", preset="smoke", force=True)  # forced: computed again
    assert len(calls) == 3


def test_import_workbench_stays_light():
    import subprocess
    import sys

    code = "import sys, workbench; print(any(m in sys.modules for m in ('torch', 'numpy', 'workbench.runner')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- the converter
@pytest.fixture
def converter(tmp_path):
    bib = tmp_path / "references.bib"
    bib.write_text("""
@article{smith2020a, title = {A {Title}}, author = {Smith, Jane and Doe, John}, journal = {J. Ex.}, year = {2020}}
@inproceedings{lee2021b, title = {Another}, author = {Lee, A. and Kim, B. and Park, C.}, booktitle = {Conf}, year = 2021}
@misc{mu2019c, title = "Solo", author = {Jo{\\~a}o M{\\"u}ller}, year = {2019}}
""")
    return MystConverter.for_chapter(tmp_path / "chapter.md")


def plain(converter, text):
    return "".join(p for p in converter.convert(text) if isinstance(p, str))


def test_citations_become_author_year(converter):
    out = plain(converter, "{cite:t}`smith2020a` and {cite:p}`lee2021b,mu2019c`; {cite}`nope` and {cite:p}`smith2020a`.")
    assert out.strip() == "Smith and Doe (2020) and (Lee et al., 2021; Müller, 2019); [nope] and (Smith and Doe, 2020)."
    refs = plain(converter, "```{bibliography}\n:filter: docname in docnames\n```")
    assert refs.index("Lee, A.") < refs.index("Müller, J.") < refs.index("Smith, J. and Doe, J. (2020). *A Title*. J. Ex.")
    assert "- [nope]" in refs


def test_equations_are_numbered_and_referenced(converter):
    cells = ["See {eq}`second` and {eq}`first`.",
             "```{math}\n:label: first\na = b\n```\n\n$$\nc = d \\\\ e = f\n$$ (second)\n\n$$x$$",
             "Unknown: {eq}`missing`."]
    converter.number(cells)
    out = [plain(converter, c) for c in cells]
    assert out[0].strip() == "See (2) and (1)."
    assert "$$\na = b\n\\tag{1}\n$$" in out[1]
    assert "\\begin{split}c = d \\\\ e = f\\end{split}\n\\tag{2}" in out[1] and "$$x$$" in out[1]
    assert out[2].strip() == "Unknown: (missing)."


def test_directives_become_plain_markdown(converter):
    text = """(sec-a)=
## Section A

:::{note}
Body with {cite:t}`smith2020a`.
:::

````{admonition} A title
:class: tip
```{math}
x
```
````

```{figure} _static/fig.png
:name: fig-one
The caption.
```

```{list-table} Results
:header-rows: 1
* - a
  - b
* - 1
  - 2
```

```{code-block} python
print("{cite}`kept`")
```

```python
x = "{eq}`kept-too`"
```

```{unknown-thing} Heading
inner {ref}`the text <sec-a>` and {ref}`sec-a` and {doc}`other`
```

% a comment
```{tableofcontents}
```
"""
    converter.number([text])
    out = plain(converter, text)
    assert "(sec-a)=" not in out and "## Section A" in out
    assert "> **Note**\n>\n> Body with Smith and Doe (2020)." in out
    assert "> **A title**\n>\n> $$\n> x\n> $$" in out
    assert "![The caption.](_static/fig.png)\n\n**Figure 1.** The caption." in out
    assert "**Results**\n\n| a | b |\n|---|---|\n| 1 | 2 |" in out
    assert '```python\nprint("{cite}`kept`")\n```' in out and 'x = "{eq}`kept-too`"' in out
    assert "inner the text and Section A and other" in out
    assert "a comment" not in out and "tableofcontents" not in out


def test_glued_values_are_shown_by_a_cell(converter):
    pieces = converter.convert("Before.\n\n```{glue:md} gaps\n:format: myst\n```\n\nAfter {glue:text}`loss:.2f`.")
    assert [type(p).__name__ for p in pieces] == ["str", "Show", "str"]
    assert pieces[1].name == "gaps" and "*[loss, shown below]*" in pieces[2]


def test_glue_shows_a_glued_value_without_myst():
    from IPython.display import Markdown

    glue = Glue("scan-snap")
    glue("text", Markdown("see {eq}`ss-r1` and {cite:t}`tian2023scan`"), display=False)
    glue("x", 0.12345, display=False)
    shown = glue.value("text").data
    assert "{eq}" not in shown and "{cite" not in shown and "Tian et al. (2023)" in shown
    assert re.search(r"see \(\d+\)", shown)
    assert glue.value("x", ".2f").data == "0.12"
    with pytest.raises(KeyError, match="nothing is glued under 'y'"):
        glue.value("y")


def test_bibtex_parser_reads_the_book_bibliography():
    entries = {e.key: e for e in parse_bibtex((BOOK_DIR / "references.bib").read_text())}
    assert entries and all(e.fields.get("title") and e.fields.get("year") for e in entries.values())
    assert all("{" not in e.reference() and "\\" not in e.reference() for e in entries.values())


# --------------------------------------------------------------------------- exported chapters
@pytest.mark.parametrize("study", study_names())
def test_exported_chapter_has_no_raw_myst(study, tmp_path):
    import nbformat

    path = export_notebook(study, tmp_path)
    assert path == tmp_path / f"{study.replace('-', '_')}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "jupytext" not in nb.metadata
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            raw = RAW_MYST.search(cell.source)
            assert raw is None, f"raw MyST {raw.group(0)!r} in {cell.source[max(0, raw.start() - 200):raw.end() + 100]!r}"
        tags = set(cell.metadata.get("tags", []))
        assert not tags & {"remove-input", "remove-cell", "hide-input", "remove-output"}
    # every value the text shows is glued by a code cell above the cell that shows it
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    for i, source in enumerate(code):
        for name in re.findall(r"glue\.show\('([^']+)'", source):
            assert any(re.search(rf"\bglue\(\s*['\"]{re.escape(name)}['\"]", c) for c in code[:i]), name
    if any("glue.show(" in c for c in code):
        assert any("from workbench.notebook import Glue" in c for c in code)
        assert not any("from myst_nb import glue" in c for c in code)


def test_export_default_path_and_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert export_notebook("scan_snap") == tmp_path / "scan_snap.ipynb"
    assert export_notebook("scan-snap", tmp_path / "sub" / "mine.ipynb").is_file()
    with pytest.raises(UnknownStudyError, match="scan-snap"):
        export_notebook("scan-snapp")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_exported_chapter_executes_at_smoke(tmp_path, monkeypatch):
    """The fastest chapter at the smoke preset, exported and run top to bottom by nbclient."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("WORKBENCH_BOOK_PRESET", "smoke")
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = chapter_notebook(BOOK_DIR / "scan_snap.md", out_dir=tmp_path, study="scan-snap")
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    shown = [o for c in nb.cells if "glue.show(" in c.source for o in c.outputs]
    assert shown and all("text/markdown" in o.get("data", {}) for o in shown)
    for out in shown:
        assert RAW_MYST.search(out["data"]["text/markdown"]) is None
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert (tmp_path / "runs" / "scan-snap").is_dir(), "the chapter ran the study through the run cache"
