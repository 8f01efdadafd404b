"""Configuration of the Scan and Snap study: the main SGD run's fields, flat, and one nested
config per other sub-experiment.

The primary experiment is SGD on the main (Syn-Small) layout, phases ``sgd`` and ``sgd_long``:
the layout (``n_common``, ``n_queries``, ``next_per_query``, ``n_distinct``), ``batch_size``,
``steps``, ``momentum``, ``init``, members eta_Y = ``eta_y`` x each of ``eta_y_factors`` at
eta_Z = ``eta_z``, times ``n_seeds`` seeds; ``sgd`` uses ``seq_len``, ``sgd_long``
``seq_len_long``.  ``grad`` (Lemma 1 against autograd) checks the same model on one batch.

The other sub-experiments own their fields, so sweeping a primary field changes only what is
computed from the primary run:

- ``ode`` (`OdeConfig`; phases ``r1``, ``r1m``, ``r2``): the three ODEs on the main layout to
  ``ode.t_max``, for the SGD pairs (these follow the primary fields: they are its theory), the
  snap grid (eta_Y in ``ode.snap_eta_y``, eta_Z = min(``ode.eta_z``, eta_Y)), the ratio grid
  (eta_Y = r ``ode.eta_z`` for r in ``ode.lr_ratios``) and, for R2 only, the sweep's grid.
- ``sweep`` (`SweepConfig`; phase ``sweep``): Fig. 6, the paper's SGD protocol on the Syn-Medium
  layouts with ``sweep.queries`` query tokens, over ``sweep.eta_z`` x ``sweep.lr_ratios`` x
  ``n_seeds`` seeds, and R2 on the same grid.
- ``joma`` (`JomaConfig`; phases ``joma_toy``, ``mlp``, ``attn_mlp``): JoMA's sparse-then-dense
  toy, the exp-attention + MLP study and the study's own softmax attention + MLP model, on the
  main layout.
- ``heatmap`` (`HeatmapConfig`; phase ``fig4``): Fig. 4 under the official command's momentum and
  initialisation (the main runs use the theory's: momentum 0, zero init).

``seed``, ``n_seeds``, ``dtype`` and ``device`` are the run's and apply to every sub-experiment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from workbench.config import (StudyConfig, SubConfig, require, require_choice, require_float, require_int,
                              require_sequence)

from studies.scan_snap.data import SequenceClasses

LR_CHECK_TIMES = (100.0, 1000.0, 20000.0)
"""Times at which the learning-rate-ratio claims are compared (spec check 8); the ODE outputs
include them."""


@dataclass(frozen=True, kw_only=True)
class OdeConfig(SubConfig):
    """The mean-field ODEs R1, R1m and R2 on the main layout (phases ``r1``, ``r1m``, ``r2``)."""

    t_max: float = 1e5
    """Horizon of the R1, R1m and R2 integrations."""
    points_per_decade: int = 30
    """Log-spaced ODE outputs per decade of t (from t = 0.01)."""
    snap_eta_y: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    """eta_Y grid of the snap-time study (R1, with eta_Z = min(ode.eta_z, eta_Y))."""
    lr_ratios: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0)
    """eta_Y / eta_Z grid (increasing) of the ODEs' learning-rate-ratio study (at eta_Z = ode.eta_z)."""
    eta_z: float = 1.0
    """eta_Z of the snap grid (capped at eta_Y) and of the ratio grid."""
    assumption2_common: int = 3
    """C of the Syn-Small-like layout integrated beside the main one (phase ``assumption2``): with
    C <= 3 its classes overlap by f_1.f_2 = C/(C + 3.85) <= 1/K = 1/2 at t = 0 (Assumption 2),
    where Syn-Small's C = 10 gives 0.72."""

    def validate(self) -> None:
        require_int(self, "assumption2_common", low=1)
        require_float(self, "t_max", low=2000)
        require_int(self, "points_per_decade", low=5)
        require_sequence(self, "snap_eta_y", low=0, low_open=True, min_len=2, increasing=True)
        require_sequence(self, "lr_ratios", low=0, low_open=True, min_len=2, increasing=True)
        require_float(self, "eta_z", low=0, low_open=True)


@dataclass(frozen=True, kw_only=True)
class SweepConfig(SubConfig):
    """Fig. 6: the paper's SGD protocol on Syn-Medium layouts over an (eta_Z, eta_Y/eta_Z) grid (phase ``sweep``)."""

    queries: tuple[int, ...] = (1,)
    """Syn-Medium panels: number of query tokens (num_last) of each."""
    next_per_query: int = 2
    """Next tokens per query in the Syn-Medium layouts (the official default)."""
    n_common: int = 10
    """C of the Syn-Medium layouts."""
    n_distinct: int = 10
    """D of the Syn-Medium layouts."""
    eta_z: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    """eta_Z grid (increasing) of the sweep (SGD and R2)."""
    lr_ratios: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0)
    """eta_Y / eta_Z grid (increasing) of the sweep (SGD and R2)."""
    momentum: float = 0.9
    """Momentum of the sweep (the official code's default, used for Fig. 6)."""
    init: Literal["zero", "random"] = "random"
    """Initialisation of the sweep (Fig. 6 used random Y and Z)."""
    seq_len: int = 128
    """T of the sweep's sequences."""
    batch_size: int = 128
    """Sequences per SGD step of the sweep."""
    steps: int = 100
    """SGD steps of the sweep (Fig. 6: 100)."""
    n_seeds: int | None = None
    """Seeds per grid cell of the sweep; None: the study's ``n_seeds``."""

    def validate(self) -> None:
        require(isinstance(self.queries, tuple) and len(self.queries) >= 1
                and all(isinstance(q, int) and not isinstance(q, bool) and q >= 1 for q in self.queries)
                and len(set(self.queries)) == len(self.queries),
                f"queries must be a tuple of distinct positive integers, got {self.queries!r}")
        require_int(self, "next_per_query", low=1)
        if self.n_seeds is not None:
            require_int(self, "n_seeds", low=1)
        require(min(self.queries) * self.next_per_query >= 2,
                "every sweep layout needs at least 2 classes (queries * next_per_query)")
        require_int(self, "n_common", low=1)
        require_int(self, "n_distinct", low=2)
        require_sequence(self, "eta_z", low=0, low_open=True, min_len=2, increasing=True)
        require_sequence(self, "lr_ratios", low=0, low_open=True, min_len=2, increasing=True)
        require_float(self, "momentum", low=0, high=1, high_open=True)
        require_choice(self, "init", ("zero", "random"))
        require_int(self, "seq_len", low=2)
        require_int(self, "batch_size", low=1)
        require_int(self, "steps", low=1)

    def layout(self, n_queries: int) -> SequenceClasses:
        """The Syn-Medium layout of the panel with ``n_queries`` query tokens."""
        return SequenceClasses(self.n_common, n_queries, self.next_per_query, self.n_distinct)

    @property
    def grid(self) -> dict[str, np.ndarray]:
        """The grid: eta_Z in ``eta_z`` (slow axis) x eta_Y/eta_Z in ``lr_ratios`` (fast axis), (pairs,) each."""
        ez = np.repeat(np.asarray(self.eta_z, dtype=np.float64), len(self.lr_ratios))
        ratio = np.tile(np.asarray(self.lr_ratios, dtype=np.float64), len(self.eta_z))
        return {"eta_y": ez * ratio, "eta_z": ez, "ratio": ratio}


@dataclass(frozen=True, kw_only=True)
class HeatmapConfig(SubConfig):
    """Fig. 4 under the paper's protocol (phase ``fig4``): the official command's optimiser and
    initialisation on the main layout, at the main runs' T, batch, steps, eta_Z and the smallest and
    largest eta_Y of ``eta_y_factors``, one seed (the figure shows one run)."""

    momentum: float = 0.9
    """Momentum (the official code's default; the Fig. 4 command does not change it)."""
    init: Literal["zero", "random"] = "random"
    """Y(0), Z(0) (the Fig. 4 command does not set ``zero_init``: U(+-1/sqrt(M)))."""

    def validate(self) -> None:
        require_float(self, "momentum", low=0, high=1, high_open=True)
        require_choice(self, "init", ("zero", "random"))


@dataclass(frozen=True, kw_only=True)
class JomaConfig(SubConfig):
    """JoMA's extension (phases ``joma_toy``, ``mlp`` and ``attn_mlp``)."""

    toy_steps: int = 5000
    """Euler steps of JoMA's sparse-then-dense toy (eta = 0.02, as the official script)."""
    mlp_steps: int = 1000
    """Gradient steps of the attention + MLP study (long-sequence limit, full class average)."""
    mlp_lr: float = 1.0
    """Learning rate (all parameters) of the attention + MLP study."""
    attn_steps: int = 2000
    """GD steps of the study's own softmax attention + l2 norm + MLP model (phase ``attn_mlp``)."""
    attn_lr: float = 1.0
    """Learning rate of its decoder and MLP (Y, W1, V) in phase ``attn_mlp``."""
    attn_lr_ratios: tuple[float, ...] = (1.0, 10.0, 100.0)
    """eta_Z / attn_lr of phase ``attn_mlp``: the decoder's rate, then an attention 10 and 100
    times faster (at ratio 1 the attention entropy moves by about 0.01 nats before the loss
    vanishes; 100 is a large-step regime where it collapses within 10 steps)."""

    def validate(self) -> None:
        require_int(self, "toy_steps", low=10)
        require_int(self, "mlp_steps", low=10)
        require_float(self, "mlp_lr", low=0, low_open=True)
        require_int(self, "attn_steps", low=10)
        require_float(self, "attn_lr", low=0, low_open=True)
        require_sequence(self, "attn_lr_ratios", low=0, low_open=True, increasing=True)


@dataclass(frozen=True, kw_only=True)
class PopulationConfig(SubConfig):
    """Exact population GD at finite T beside SGD, R1 and R2 on one small layout (phase
    ``population``), and the search for a regime where the model itself scans (phase
    ``scan_grid``)."""

    n_common: int = 3
    """C of the small layout (Q = 2 queries, one next token each, as Syn-Small)."""
    n_distinct: int = 4
    """D of the small layout (weights linspace(0.1, 1, D))."""
    seq_len: int = 8
    """T of population GD and of the SGD beside it: 1166 lumped count states (C(T+S-2, S-1) = 3432
    count vectors without lumping)."""
    steps: int = 1000
    """GD and SGD steps (about 9 t_0 = 2 K ln M / eta_Y at the smallest eta_Y = 0.1)."""
    long_steps: int = 5000
    """Population GD alone goes on to this many steps (log-spaced observations past ``steps``): the
    scan search's finite-T member."""
    eta_z: float = 1.0
    """eta_Z of every member."""
    lr_ratios: tuple[float, ...] = (0.1, 1.0)
    """eta_Y / eta_Z of the members (below 1 the attention moves further before the snap; a first
    run also had 10, whose eta_Y = 10 step is far from the flow R1 is: dropped)."""
    batch_size: int = 1024
    """Sequences per SGD step of the SGD beside population GD.  Set after a first run at the main
    runs' 128: there SGD's seed mean drifts from population GD by 0.09 in c (an O(eta / B) noise
    drift: 0.006 at B = 1024), see the chapter."""
    grid_common: tuple[int, ...] = (3, 10, 1, 3, 10)
    """C of the scan search's layouts (paired with ``grid_distinct``; Q = 2, one next token each)."""
    grid_distinct: tuple[int, ...] = (4, 10, 4, 6, 4)
    """D of the scan search's layouts."""
    grid_ratios: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    """eta_Y / eta_Z of the scan search (R1 and R2 at eta_Z = 1, to grid_t_max)."""
    grid_t_max: float = 1e5
    """Horizon of the scan search's R1 and R2 integrations."""

    def validate(self) -> None:
        require_int(self, "n_common", low=1)
        require_int(self, "n_distinct", low=3)
        require_int(self, "seq_len", low=2)
        from studies.scan_snap.population import MAX_STATES, n_lumped_states
        states = n_lumped_states(self.layout, self.seq_len)
        require(states <= MAX_STATES, f"population: {states} count states at seq_len={self.seq_len} "
                                      f"(C={self.n_common}, D={self.n_distinct}) exceed {MAX_STATES}")
        require_int(self, "steps", low=10)
        require_int(self, "long_steps", low=10)
        require(self.long_steps >= self.steps, f"long_steps ({self.long_steps}) must be >= steps ({self.steps})")
        require_float(self, "eta_z", low=0, low_open=True)
        require_sequence(self, "lr_ratios", low=0, low_open=True, increasing=True)
        require_int(self, "batch_size", low=1)
        require_sequence(self, "grid_common", low=1)
        require_sequence(self, "grid_distinct", low=3)
        require(len(self.grid_common) == len(self.grid_distinct)
                and all(isinstance(x, int) for x in self.grid_common + self.grid_distinct),
                f"grid_common and grid_distinct must be integer tuples of one length, got "
                f"{self.grid_common!r} and {self.grid_distinct!r}")
        require_sequence(self, "grid_ratios", low=0, low_open=True, increasing=True)
        require_float(self, "grid_t_max", low=100)

    @property
    def layout(self) -> SequenceClasses:
        """The small layout of population GD."""
        return SequenceClasses(self.n_common, 2, 1, self.n_distinct)

    @property
    def grid_layouts(self) -> list[SequenceClasses]:
        """The scan search's layouts."""
        return [SequenceClasses(c, 2, 1, d) for c, d in zip(self.grid_common, self.grid_distinct)]


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
    eta_y_factors: tuple[float, ...] = (1.0, 4.0, 10.0)
    """Main SGD/ODE members use eta_Y = eta_y * factor at eta_Z = eta_z (Fig. 4 uses 1 and 10)."""
    seq_len_long: int = 512
    """A longer T for the finite-T bias check (SGD approaches R1 as T grows)."""
    ode: OdeConfig = field(default_factory=OdeConfig)
    """The mean-field ODEs R1, R1m, R2 (horizon, output times, their own learning-rate grids)."""
    sweep: SweepConfig = field(default_factory=SweepConfig)
    """Fig. 6's sweep under the paper's SGD protocol, and R2 on its grid."""
    joma: JomaConfig = field(default_factory=JomaConfig)
    """JoMA's extension: the sparse-then-dense toy and the attention + MLP study."""
    heatmap: HeatmapConfig = field(default_factory=HeatmapConfig)
    """Fig. 4's heatmaps under the paper's protocol (momentum, init), beside the main runs'."""
    population: PopulationConfig = field(default_factory=PopulationConfig)
    """Exact population GD at finite T (beside SGD, R1, R2) and the search for a regime where the model scans."""

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
        require_sequence(self, "eta_y_factors", low=0, low_open=True, increasing=True)
        for name, steps in (("steps", self.steps), ("sweep.steps", self.sweep.steps)):
            require(self.ode.t_max >= steps, f"ode.t_max ({self.ode.t_max}) must be >= {name} ({steps}): "
                                             "the ODEs are compared with SGD at t = steps")

    # ----------------------------------------------------------------------------- presets
    @classmethod
    def smoke(cls) -> "Config":
        """Seconds: Syn-Small at a reduced scale, two-point grids, short horizons."""
        return cls(
            n_seeds=2,                                  # the fewest with a seed spread and a standard error
            steps=40,                                   # 4x R1's snap time at eta_Y = 1 (t_1/2 = 10.4)
            eta_y_factors=(1.0, 4.0),                   # two main pairs: a slow and a fast decoder
            ode=OdeConfig(
                t_max=3000.0,                           # past 150 t_0 = 2116 of eta_Y = 1: log_slowdown keeps its pairs
                points_per_decade=12,                   # fewer output times (the checks interpolate in log t)
                snap_eta_y=(1.0, 4.0),                  # two points fix the 1/eta_Y scaling of the snap
                lr_ratios=(1.0, 10.0),                  # the two ends of the ratio grid
            ),
            sweep=SweepConfig(
                eta_z=(0.5, 3.0),                       # the two ends of the eta_Z grid
                lr_ratios=(1.0, 10.0),                  # the two ends of the ratio grid
                steps=40,                               # as the main runs; still past the slowest cell's t_0 = 28
            ),
            population=PopulationConfig(
                steps=200,                              # past the snap of eta_Y = 1 (t_0 = 10.8), not of eta_Y = 0.1
                long_steps=400,                         # the long population-GD run only twice as long
                grid_common=(3,), grid_distinct=(4,),   # the small layout alone
                grid_ratios=(0.1, 1.0),                 # as the members
                grid_t_max=3000.0,                      # as ode.t_max
            ),
            joma=JomaConfig(
                toy_steps=2000,                         # the entropy minimum and a 0.1-nat rebound (the check asks 0.01)
                mlp_steps=400,                          # with mlp_lr 2: gradient-flow time 800, near quick's 1000
                mlp_lr=2.0,                             # a larger step, so 400 steps suffice
                attn_steps=300,                         # past the large-step collapse and its rebound
                attn_lr_ratios=(1.0, 100.0),            # the two ends of the ratio grid
            ),
        )

    @classmethod
    def quick(cls) -> "Config":
        """About two minutes on 2 cores: Syn-Small (Fig. 4 settings, momentum 0 for the overlays),
        full learning-rate grids, the num_last = 1 panel of the Fig. 6 sweep, population GD on the
        small layout (about 40 s) and the scan search (about 12 s)."""
        return cls(
            n_seeds=8,                      # eight seeds per grid cell: standard errors for the SGD comparisons
            # 32 seeds per sweep cell: the ratio-max-vs-second gap is ~0.12 nats against a seed s.d. up to
            # 0.17, so 8 seeds give the z >= 2 test about even odds (it passed at z = 3.1 under the old
            # draws and failed at z = 1.84 under the stream draws; raised after that failure, see chapter)
            sweep=SweepConfig(n_seeds=32),
        )

    @classmethod
    def paper(cls) -> "Config":
        """The paper's scale: Fig. 6's four Syn-Medium panels, 4 x 4 learning-rate grid, 10 seeds,
        100 steps, batch 128, T = 128 (GPU welcome)."""
        return cls(
            n_seeds=10,                                 # ten seeds per grid cell, the paper's scale
            sweep=SweepConfig(queries=(1, 3, 5, 10),    # Fig. 6's four panels, num_last = 1, 3, 5, 10
                              n_seeds=32),              # the z-tests' power, as at quick (the paper: 10)
        )

    # ----------------------------------------------------------------------------- derived
    @property
    def sweep_seeds(self) -> int:
        """Seeds per grid cell of the ``sweep`` phase."""
        return self.sweep.n_seeds if self.sweep.n_seeds is not None else self.n_seeds

    @property
    def layout(self) -> SequenceClasses:
        """The main (Syn-Small) layout of the SGD runs, the ODEs, ``grad`` and the MLP study."""
        return SequenceClasses(self.n_common, self.n_queries, self.next_per_query, self.n_distinct)

    @property
    def n_classes(self) -> int:
        """K of the main layout."""
        return self.layout.n_classes

    @property
    def main_eta(self) -> tuple[np.ndarray, np.ndarray]:
        """(eta_Y, eta_Z) of the main runs' learning-rate pairs, (pairs,) each."""
        eta_y = self.eta_y * np.asarray(self.eta_y_factors, dtype=np.float64)
        return eta_y, np.full_like(eta_y, self.eta_z)

    @property
    def ode_times(self) -> np.ndarray:
        """0, every integer step up to the SGD horizons, log-spaced points from 0.01 to
        ode.t_max, and the check times."""
        ode = self.ode
        decades = math.log10(ode.t_max) + 2
        logs = np.logspace(-2, math.log10(ode.t_max), int(round(decades * ode.points_per_decade)) + 1)
        extra = [t for t in LR_CHECK_TIMES + (10.0, 10_000.0) if t <= ode.t_max]
        last_step = max(self.steps, self.sweep.steps)
        t = np.unique(np.concatenate([[0.0], np.arange(1, last_step + 1, dtype=np.float64), logs, extra]))
        return t[t <= ode.t_max]

    @property
    def ode_members(self) -> dict[str, np.ndarray]:
        """The (eta_Y, eta_Z) pairs integrated by R1/R1m (groups 0-2) and R2 (groups 0-3).

        group 0: the main SGD pairs; group 1: the snap grid eta_Y in ode.snap_eta_y with
        eta_Z = min(ode.eta_z, eta_Y); group 2: eta_Y = r ode.eta_z, eta_Z = ode.eta_z for r in
        ode.lr_ratios; group 3: the sweep's grid.
        """
        pairs, groups = [], []
        for ey, ez in zip(*self.main_eta):
            pairs.append((float(ey), float(ez))); groups.append(0)
        for ey in self.ode.snap_eta_y:
            pairs.append((ey, min(self.ode.eta_z, ey))); groups.append(1)
        for r in self.ode.lr_ratios:
            pairs.append((self.ode.eta_z * r, self.ode.eta_z)); groups.append(2)
        for ez in self.sweep.eta_z:
            for r in self.sweep.lr_ratios:
                pairs.append((ez * r, ez)); groups.append(3)
        pairs = np.asarray(pairs, dtype=np.float64)
        return {"eta_y": pairs[:, 0], "eta_z": pairs[:, 1], "group": np.asarray(groups, dtype=np.int64)}

    def memory_estimate(self) -> tuple[float, str]:
        """The largest batched tensors of the SGD runs: one step's token counts (e, B, M_c), a block
        of drawn counts (`sgd.BLOCK_NUMBERS`), the count sampler's binomial table ((C+D-1) T^2 at
        T = seq_len_long), the parameters Y, Z (e, M, M) and the main runs' z trajectory
        (steps + 1, e, Q, M_c)."""
        from studies.scan_snap.sgd import BLOCK_NUMBERS
        size = 8 if self.dtype == "float64" else 4
        main_layout, sweep_layout = self.layout, self.sweep.layout(max(self.sweep.queries))
        context, vocab = main_layout.n_context, main_layout.vocab
        main = len(self.eta_y_factors) * self.n_seeds
        sweep = len(self.sweep.eta_z) * len(self.sweep.lr_ratios) * self.n_seeds
        sweep_context, sweep_vocab = sweep_layout.n_context, sweep_layout.vocab
        candidates = [
            (main * self.batch_size * context, f"one batch of the main SGD ({main} members)"),
            (BLOCK_NUMBERS, "a block of drawn token counts"),
            ((self.n_common + self.n_distinct - 1) * self.seq_len_long ** 2, "the count sampler's binomial table"),
            (main * 2 * vocab ** 2, f"Y and Z of the main SGD ({main} members, M={vocab})"),
            ((self.steps + 1) * main * self.n_queries * context, "the main runs' z trajectory"),
            (sweep * self.sweep.batch_size * sweep_context, f"one batch of the sweep ({sweep} members)"),
            (sweep * 2 * sweep_vocab ** 2, f"Y and Z of the sweep ({sweep} members, M={sweep_vocab})"),
        ]
        numbers, what = max(candidates)
        return numbers * size, what
