"""Find studies by name.  `studies/__init__.py` lists the study packages in ``STUDIES``.

A study package is any module that follows the study contract (see DESIGN.md): it exposes
``NAME``, ``TITLE``, ``REFERENCES``, ``Config``, ``run``, ``predict``, ``checks`` and ``figures``.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from workbench.errors import UnknownStudyError, did_you_mean

CONTRACT = ("NAME", "TITLE", "REFERENCES", "Config", "run", "predict", "checks", "figures")


def study_modules() -> list[str]:
    import studies

    return list(studies.STUDIES)


def all_studies() -> list[ModuleType]:
    return [importlib.import_module(f"studies.{m}") for m in study_modules()]


def study_names() -> list[str]:
    return [m.replace("_", "-") for m in study_modules()]


def get_study(name: str | ModuleType) -> ModuleType:
    """The study module called ``name`` (kebab-case CLI name or snake-case package name)."""
    if isinstance(name, ModuleType):
        return name
    snake = name.replace("-", "_")
    if snake not in study_modules():
        raise UnknownStudyError(f"unknown study {name!r}; known studies: {', '.join(study_names())}."
                                f"{did_you_mean(name.replace('_', '-'), study_names())}")
    module = importlib.import_module(f"studies.{snake}")
    missing = [a for a in CONTRACT if not hasattr(module, a)]
    if missing:
        raise ImportError(f"study {name!r} does not follow the study contract: missing {missing}")
    return module
