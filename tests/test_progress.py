"""Progress bars (`workbench.progress`): a widget in Jupyter when ipywidgets is there, otherwise a
plain bar that warns about nothing and redraws rarely."""
import sys
import warnings

import pytest
import torch

from workbench import progress
from workbench.progress import progress_bar


@pytest.fixture
def fake_notebook(monkeypatch):
    """Pretend to run inside a Jupyter kernel."""
    monkeypatch.setattr(progress, "in_notebook", lambda: True)


@pytest.fixture
def no_ipywidgets(monkeypatch):
    """Make ``import ipywidgets`` fail, and tqdm.notebook be imported afresh without it."""
    import tqdm.notebook  # noqa: F401  (imported now, so that monkeypatch puts it back afterwards)

    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    monkeypatch.delitem(sys.modules, "tqdm.notebook", raising=False)
    monkeypatch.delitem(sys.modules, "tqdm.autonotebook", raising=False)


def tqdm_warnings(record):
    from tqdm import TqdmWarning

    return [w for w in record if issubclass(w.category, TqdmWarning)]


def test_not_a_notebook_under_pytest():
    assert not progress.in_notebook()


def test_plain_bar_passes_items_through():
    assert list(progress_bar(range(5), desc="x")) == list(range(5))
    assert list(progress_bar(range(5), enabled=False)) == list(range(5))
    bar = progress_bar(total=3, enabled=False)
    bar.update(1)
    bar.set_postfix_str("stage")
    bar.close()


def test_notebook_without_ipywidgets_warns_nothing_and_redraws_rarely(fake_notebook, no_ipywidgets, capsys):
    assert not progress.widgets_available()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert list(progress_bar(range(2000), desc="train", mininterval=0.5)) == list(range(2000))
        bar = progress_bar(total=4, desc="stages")
        for _ in range(4):
            bar.set_postfix_str("stage")
            bar.update(1)
        bar.close()
    assert not tqdm_warnings(record), [str(w.message) for w in record]
    err = capsys.readouterr().err
    # a fast loop draws the line at start and end only, not once per step
    assert 0 < err.count("\r") <= 8, err


def test_trainer_in_notebook_without_ipywidgets_warns_nothing(fake_notebook, no_ipywidgets, recwarn):
    from workbench.train import GD, train

    w = torch.ones(2, 3, dtype=torch.float64)
    result = train({"w": w}, lambda p, step: 0.5 * p["w"].pow(2).sum(dim=1), GD(0.1), 50, progress=True)
    assert result.params["w"].abs().max() < 1
    assert not tqdm_warnings(recwarn.list), [str(w.message) for w in recwarn.list]


def test_notebook_with_ipywidgets_uses_the_widget_bar(fake_notebook, recwarn):
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm as widget_tqdm

    bar = progress_bar(total=3, desc="stages")
    try:
        assert isinstance(bar, widget_tqdm)
        bar.update(3)
    finally:
        bar.close()
    assert not tqdm_warnings(recwarn.list)
