"""Configuration of the Scan and Snap study: one config drives a coherent set of sub-experiments.

How the sub-experiments derive from the fields (array prefixes in the record in brackets):

- ``sgd`` / ``sgd_long``: SGD on the config's layout (``n_common``, ``n_queries``,
  ``next_per_query``, ``n_distinct``) with ``batch_size``, ``steps``, ``momentum``, ``init``;
  members are eta_Y = ``eta_y`` x each of ``eta_y_factors`` at eta_Z = ``eta_z``, times
  ``n_seeds`` seeds; ``sgd`` uses ``seq_len``, ``sgd_long`` uses ``seq_len_long``.
- ``r1`` / ``r1m`` / ``r2``: the three ODEs on the same layout, from t = 0 to ``ode_t_max``
  (outputs at every integer step up to ``steps`` and ``ode_points_per_decade`` log-spaced
  points), for the learning-rate pairs: the ``sgd`` pairs, the snap grid (eta_Y in
  ``snap_eta_y``, eta_Z = min(``eta_z``, eta_Y)), the ratio grid (eta_Y = r ``eta_z`` for r in
  ``lr_ratios``, eta_Z = ``eta_z``) and, for R2 only, the sweep grid (every ``sweep_eta_z`` x
  ``lr_ratios``).
- ``sweep<Q>``: the Fig. 6 protocol (paper's SGD: ``sweep_momentum``, ``sweep_init``) on the
  Syn-Medium layout with Q = each of ``sweep_queries`` queries x ``sweep_next_per_query`` next
  tokens, the grid ``sweep_eta_z`` x ``lr_ratios`` x ``n_seeds`` seeds as one batched run per Q,
  with ``seq_len``, ``batch_size``, ``steps``; ``r2_sweep<Q>`` is R2 on the same grid.
- ``grad``: one batch with random Y, Z for the Lemma-1-versus-autograd check.
- ``joma_toy`` / ``mlp``: the JoMA extension (``joma_steps``; ``mlp_steps`` at ``mlp_lr``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from workbench.config import StudyConfig, require, require_choice, require_float, require_int, require_sequence


@dataclass(frozen=True, kw_only=True)
class Config(StudyConfig):
    """Scan and Snap on the sequence-class data model (Tian et al. 2023), plus JoMA's extension."""

    n_common: int = 10
    """C: common tokens, shared by every class (weight 1)."""
    n_queries: int = 2
    """Q: query (last) tokens of the main layout."""
    next_per_query: int = 1
    """Next tokens (classes) per query token in the main layout (K = Q * next_per_query)."""
    n_distinct: int = 10
    """D: distinct tokens per class, P-weights linspace(0.1, 1, D)."""
    seq_len: int = 128
    """T: sequence length including the query (T - 1 contextual tokens)."""
    batch_size: int = 128
    """Sequences per SGD step."""
    steps: int = 100
    """SGD steps (and the horizon at which SGD is compared with the ODEs)."""
    eta_y: float = 1.0
    """Decoder learning rate eta_Y of the main runs (multiplied by each of eta_y_factors)."""
    eta_z: float = 1.0
    """Attention learning rate eta_Z of the main runs."""
    momentum: float = 0.0
    """Heavy-ball momentum of the main SGD runs (0: plain SGD, the theory's discretisation)."""
    init: Literal["zero", "random"] = "zero"
    """Y(0), Z(0) of the main SGD runs: zero (the paper's theory) or U(+-1/sqrt(M)) (Model2 default)."""
    ode_t_max: float = 1e5
    """Horizon of the R1, R1m and R2 integrations."""
    eta_y_factors: tuple[float, ...] = (1.0, 4.0, 10.0)
    """Main SGD/ODE members use eta_Y = eta_y * factor at eta_Z = eta_z (Fig. 4 uses 1 and 10)."""
    seq_len_long: int = 512
    """A longer T for the finite-T bias check (SGD approaches R1 as T grows)."""
    snap_eta_y: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    """eta_Y grid of the snap-time study (R1, with eta_Z = min(eta_z, eta_Y))."""
    lr_ratios: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0)
    """eta_Y / eta_Z grid (increasing) of the learning-rate-ratio studies and the Fig. 6 sweep."""
    sweep_eta_z: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    """eta_Z grid (increasing) of the Fig. 6 sweep (SGD and R2)."""
    sweep_queries: tuple[int, ...] = (1,)
    """Syn-Medium panels of the Fig. 6 sweep: number of query tokens (num_last) of each."""
    sweep_next_per_query: int = 2
    """Next tokens per query in the Syn-Medium sweep layouts (the official default)."""
    sweep_momentum: float = 0.9
    """Momentum of the sweep (the official code's default, used for Fig. 6)."""
    sweep_init: Literal["zero", "random"] = "random"
    """Initialisation of the sweep (Fig. 6 used random Y and Z)."""
    ode_points_per_decade: int = 30
    """Log-spaced ODE outputs per decade of t (from t = 0.01)."""
    joma_steps: int = 5000
    """Euler steps of JoMA's sparse-then-dense toy (eta = 0.02, as the official script)."""
    mlp_steps: int = 1000
    """Gradient steps of the attention + MLP study (long-sequence limit, full class average)."""
    mlp_lr: float = 1.0
    """Learning rate (all parameters) of the attention + MLP study."""

    def validate(self) -> None:
        require_int(self, "n_common", low=1)
        require_int(self, "n_queries", low=1)
        require_int(self, "next_per_query", low=1)
        require(self.n_queries * self.next_per_query >= 2,
                f"need at least 2 classes (n_queries * next_per_query), got {self.n_queries * self.next_per_query}")
        require_int(self, "n_distinct", low=2)
        require_int(self, "seq_len", low=2)
        require_int(self, "seq_len_long", low=3)
        require(self.seq_len_long > self.seq_len,
                f"seq_len_long ({self.seq_len_long}) must exceed seq_len ({self.seq_len})")
        require_int(self, "batch_size", low=1)
        require_int(self, "steps", low=1)
        require_float(self, "eta_y", low=0, low_open=True)
        require_float(self, "eta_z", low=0, low_open=True)
        require_float(self, "momentum", low=0, high=1, high_open=True)
        require_choice(self, "init", ("zero", "random"))
        require_float(self, "ode_t_max", low=2000)
        require(self.ode_t_max >= self.steps, f"ode_t_max ({self.ode_t_max}) must be >= steps ({self.steps})")
        require_sequence(self, "eta_y_factors", low=0, low_open=True, increasing=True)
        require_sequence(self, "snap_eta_y", low=0, low_open=True, min_len=2, increasing=True)
        require_sequence(self, "lr_ratios", low=0, low_open=True, min_len=2, increasing=True)
        require_sequence(self, "sweep_eta_z", low=0, low_open=True, min_len=2, increasing=True)
        require(isinstance(self.sweep_queries, tuple) and len(self.sweep_queries) >= 1
                and all(isinstance(q, int) and not isinstance(q, bool) and q >= 1 for q in self.sweep_queries)
                and len(set(self.sweep_queries)) == len(self.sweep_queries),
                f"sweep_queries must be a tuple of distinct positive integers, got {self.sweep_queries!r}")
        require_int(self, "sweep_next_per_query", low=1)
        require(min(self.sweep_queries) * self.sweep_next_per_query >= 2,
                "every sweep layout needs at least 2 classes (sweep_queries * sweep_next_per_query)")
        require_float(self, "sweep_momentum", low=0, high=1, high_open=True)
        require_choice(self, "sweep_init", ("zero", "random"))
        require_int(self, "ode_points_per_decade", low=5)
        require_int(self, "joma_steps", low=10)
        require_int(self, "mlp_steps", low=10)
        require_float(self, "mlp_lr", low=0, low_open=True)

    # ----------------------------------------------------------------------------- presets
    @classmethod
    def smoke(cls) -> "Config":
        """Seconds: Syn-Small at a reduced scale, two-point grids, short horizons."""
        return cls(seq_len=128, seq_len_long=512, batch_size=128, steps=40, n_seeds=2, ode_t_max=3000.0,
                   eta_y_factors=(1.0, 4.0), snap_eta_y=(1.0, 4.0), lr_ratios=(1.0, 10.0),
                   sweep_eta_z=(0.5, 3.0), ode_points_per_decade=12, joma_steps=2000, mlp_steps=400,
                   mlp_lr=2.0)

    @classmethod
    def quick(cls) -> "Config":
        """About a minute on 2 cores: Syn-Small (Fig. 4 settings, momentum 0 for the overlays),
        full learning-rate grids, the num_last = 1 panel of the Fig. 6 sweep with 8 seeds."""
        return cls(n_seeds=8)

    @classmethod
    def paper(cls) -> "Config":
        """The paper's scale: Fig. 6's four Syn-Medium panels (num_last 1, 3, 5, 10), 4 x 4
        learning-rate grid, 10 seeds, 100 steps, batch 128, T = 128 (GPU welcome)."""
        return cls(n_seeds=10, sweep_queries=(1, 3, 5, 10))

    # ----------------------------------------------------------------------------- derived
    @property
    def n_classes(self) -> int:
        return self.n_queries * self.next_per_query

    def memory_estimate(self) -> tuple[float, str]:
        """The largest batched tensors of the SGD runs: one step's token counts (e, B, M_c), the
        parameters Y, Z (e, M, M) and the main runs' z trajectory (steps + 1, e, Q, M_c)."""
        size = 8 if self.dtype == "float64" else 4
        context = self.n_common + self.n_classes * self.n_distinct
        vocab = context + self.n_queries + self.n_classes
        main = len(self.eta_y_factors) * self.n_seeds
        sweep = len(self.sweep_eta_z) * len(self.lr_ratios) * self.n_seeds
        q = max(self.sweep_queries)
        sweep_context = self.n_common + q * self.sweep_next_per_query * self.n_distinct
        sweep_vocab = sweep_context + q + q * self.sweep_next_per_query
        candidates = [
            (main * self.batch_size * context, f"one batch of the main SGD ({main} members)"),
            (main * 2 * vocab ** 2, f"Y and Z of the main SGD ({main} members, M={vocab})"),
            ((self.steps + 1) * main * self.n_queries * context, "the main runs' z trajectory"),
            (sweep * self.batch_size * sweep_context, f"one batch of the sweep ({sweep} members)"),
            (sweep * 2 * sweep_vocab ** 2, f"Y and Z of the sweep ({sweep} members, M={sweep_vocab})"),
        ]
        numbers, what = max(candidates)
        return numbers * size, what
