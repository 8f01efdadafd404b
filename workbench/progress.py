"""Progress bars that suit where they are shown: a widget in Jupyter, a live line in a terminal.

`progress_bar` is the one constructor the library uses (the trainer's step loop, the studies'
phase bars).  It picks

- ``tqdm.notebook`` (an ipywidgets bar) inside a Jupyter kernel when ipywidgets is importable
  (the ``book`` extra installs it);
- inside a Jupyter kernel without ipywidgets, a plain text bar refreshed at most every few
  seconds, so a cell's output holds one line that updates rather than a flood of them, and no
  ``TqdmWarning: IProgress not found``;
- in a terminal, tqdm's usual bar on stderr;
- elsewhere (stderr piped to a file, a CI log) no bar at all, as tqdm's ``disable=None`` does.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable

from tqdm import tqdm as text_tqdm

#: Seconds between redraws of the text bar inside a notebook without ipywidgets: every redraw
#: is appended to the cell's saved output, so keep them rare.
NOTEBOOK_TEXT_INTERVAL = 5.0


def in_notebook() -> bool:
    """True when running inside a Jupyter kernel (Notebook, Lab, VS Code), which can show
    widgets; False in a terminal, in IPython's terminal shell and in qtconsole/Spyder."""
    if "ipykernel" not in sys.modules:  # cheap and avoids importing IPython
        return False
    if any(k == "QT_API" or k.startswith("SPYDER") for k in os.environ):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def widgets_available() -> bool:
    """True when ipywidgets can be imported, i.e. tqdm.notebook can draw its widget."""
    try:
        from tqdm.notebook import IProgress
    except ImportError:
        return False
    return IProgress is not None


class RareTextBar(text_tqdm):
    """A text bar whose postfix and description wait for the next (rate-limited) redraw instead
    of forcing one, so a bar advanced by hand stays within its ``mininterval``."""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        super().set_postfix_str(s, refresh=False)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        super().set_description(desc, refresh=False)


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
                 enabled: bool = True, leave: bool = False, **kwargs: Any):
    """A tqdm bar over ``iterable`` (or a manual one of ``total`` steps, advanced by ``update``)
    that suits the place it is shown in (see the module docstring).

    ``enabled=False`` returns a disabled bar: iterating it yields ``iterable`` unchanged and
    ``update``/``set_postfix_str`` do nothing.  Other keyword arguments go to tqdm.
    """
    if not enabled:
        return text_tqdm(iterable, total=total, desc=desc, disable=True)
    if in_notebook():
        if widgets_available():
            from tqdm.notebook import tqdm as widget_tqdm
            return widget_tqdm(iterable, total=total, desc=desc, leave=leave, **kwargs)
        # ipykernel's stderr is not a tty, so tqdm's disable=None would hide the bar: force it on,
        # redraw rarely, and keep it to one fixed-width line (the frontend honours "\r").
        kwargs["mininterval"] = max(float(kwargs.get("mininterval", 0.1)), NOTEBOOK_TEXT_INTERVAL)
        kwargs.setdefault("ncols", 80)
        return RareTextBar(iterable, total=total, desc=desc, leave=leave, file=sys.stderr,
                           dynamic_ncols=False, disable=False, **kwargs)
    kwargs.setdefault("disable", None)  # None: no bar when stderr is not a terminal
    return text_tqdm(iterable, total=total, desc=desc, leave=leave, **kwargs)

