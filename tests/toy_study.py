"""A tiny study used only by the machinery tests: one softmax-attention layer on a random
regression target, trained by GD on an ensemble of seeds.  It follows the full study contract so
the CLI, the runner and the records can be tested without a real study's cost."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.checks import Check
from workbench.config import StudyConfig, require_float, require_int
from workbench.errors import DivergenceError
from workbench.record import Record
from workbench.streams import Stream
from workbench.train import GD, log_steps, train

NAME = "toy"
TITLE = "Toy: one attention layer fitted by gradient descent"
REFERENCES: list[str] = []


@dataclass(frozen=True, kw_only=True)
class Config(StudyConfig):
    n_tokens: int = 4
    """Tokens per sequence."""
    d: int = 3
    """Feature dimension."""
    steps: int = 50
    """GD steps."""
    lr: float = 0.03
    """Learning rate."""
    loss_floor: float = 1e9
    """The check passes when the final loss is at most this (tests set it to force a failure)."""

    def validate(self) -> None:
        require_int(self, "n_tokens", low=1)
        require_int(self, "d", low=1)
        require_int(self, "steps", low=1)
        require_float(self, "lr", low=0, low_open=True)

    @classmethod
    def smoke(cls):
        return cls(n_seeds=2)

    @classmethod
    def quick(cls):
        return cls(n_seeds=3)


def run(config: Config, *, device=None, progress: bool = True) -> Record:
    dev, dt = config.torch_device, config.torch_dtype
    X, y, W, v = draw(config, config.n_seeds)

    try:
        result = fit(X, y, W, v, config.lr, config.steps)
    except DivergenceError as err:
        raise DivergenceError(str(err), step=err.step, partial={"loss": err.partial.trajectory["loss"]}) from err
    record = Record(study=NAME, config=config)
    record.add(X=X, y=y, loss=result.trajectory["loss"], steps=result.steps, W=result.params["W"])
    return record


def draw(config: Config, members: int):
    """Tokens X, targets y and the init (W, v) of every member, from keyed streams."""
    s = Stream(config.seed, "toy")
    kw = dict(members=members, device=config.torch_device, dtype=config.torch_dtype)
    n, d = config.n_tokens, config.d
    return (s.child("X").normal((n, d), **kw), s.child("y").normal((n,), **kw),
            0.1 * s.child("W").normal((d, d), **kw), s.child("v").normal((d,), **kw))


def fit(X, y, W, v, lr, steps):
    """GD on the squared loss of f(X) = softmax(X W X^T) X v, every member at once."""
    def loss_fn(p, step):
        P = torch.softmax(torch.einsum("eid,edk,ejk->eij", X, p["W"], X), dim=-1)  # (e, i, j)
        pred = torch.einsum("eij,ejd,ed->ei", P, X, p["v"])
        return 0.5 * (pred - y).pow(2).mean(dim=1)

    return train({"W": W, "v": v}, loss_fn, GD(lr), steps, observe_at=log_steps(steps, 10))


def bench_case(members: int, device: str):
    from workbench.bench import KernelCase

    cfg = Config(n_seeds=members, steps=20, n_tokens=4, d=3, device=str(device))
    X, y, W, v = draw(cfg, members)
    out = lambda r: {"W": r.params["W"], "loss": r.trajectory["loss"].T}
    return KernelCase("gd-one-layer", lambda: out(fit(X, y, W, v, 0.1, cfg.steps)),
                      lambda i: out(fit(X[i:i + 1], y[i:i + 1], W[i:i + 1], v[i:i + 1], 0.1, cfg.steps)))


def predict(config: Config) -> dict:
    return {"loss_decreases": True}


def checks(record: Record) -> list[Check]:
    loss = record["loss"]
    return [
        Check.at_most("loss_decreases", "GD with a small step decreases the loss", 0.0,
                      float((loss[-1] - loss[0]).max()), regime="toy"),
        Check.at_most("loss_floor", "the final loss is below the configured floor", record.config.loss_floor,
                      float(loss[-1].max()), regime="toy"),
    ]


def figures(record: Record) -> dict:
    from workbench.plotting import new_figure

    fig, ax = new_figure()
    ax[0, 0].plot(record["steps"], record["loss"])
    return {"loss": fig}
