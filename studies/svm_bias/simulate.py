"""The sub-experiments of svm-bias: one function per phase, each returning a typed result.

`run` is the list of phases (`PHASES`); `workbench.phases.run_phases` owns threads, autograd,
progress and timing, and stores each result as ``<phase>.<field>`` in the record (a nested run
adds ``.<run>``: ``norms.ngd.W``; a width of the sweep ``.d<width>``: ``sweep.d4.W``).  Every
array a check or a figure needs is stored: the instances (X, Z, Y, v), the initial and final
parameters, W trajectories at log- and linearly spaced steps, and every SVM solution that was
solved, so a third party can re-solve the SVMs from the instances and re-measure the
correlations and efficiencies without rerunning anything.  `studies.svm_bias.config` says which
config drives which phase.

The first phase, ``solver``, stores nothing: it makes the `SVMCache` that every later phase
shares, so an SVM that two phases need (the primary run and ``norms.ngd`` train the same W on the
same instances at the default sizes) is solved once.

Random streams: every draw is a `workbench.streams.Stream` named after its sub-experiment
(`stream`: ``Stream(seed, "svm-bias/<experiment>", *keys)``) with the purpose as a string child
("instances", "init", "alpha") and the ensemble member as the integer child, drawn for the whole
ensemble in one call on the run's device; the sweep's streams carry the width d (and the init
scale's name) as keys.  No offsets are added to the seed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from workbench.phases import TRANSIENT, Phase, run_phases
from workbench.record import Record, to_numpy
from workbench.streams import Stream

from studies.svm_bias.config import Config
from studies.svm_bias.instances import (Instance, equal_scores_instance, instance_dims, make_instance,
                                        mmts_single_instance, random_instance, toy_instance)
from studies.svm_bias.model import empirical_risk, risk_gradient_W, selected_tokens
from studies.svm_bias.svm import (NORMS, SUPPORT_TOL, InfeasibleSVMError, SVMSolution, att_svm, att_svm_ldp, margins,
                                  verify_kkt)
from studies.svm_bias.theory import MMTS_STARTS, predicted_norm, rival_norm, toy_solutions
from studies.svm_bias.training import TrainedRun, init_params, observation_steps, train_attention

NAIVE_SEEDS = 4
"""The naive forward pass runs on the first min(NAIVE_SEEDS, norms.n_seeds) norms instances."""


def stream(cfg: Config, experiment: str, *keys) -> Stream:
    """The stream of sub-experiment ``experiment`` (keys: e.g. the sweep's width)."""
    return Stream(cfg.seed, f"svm-bias/{experiment}", *keys)


# ------------------------------------------------------------------------------ typed results
@dataclass(kw_only=True)
class Instances:
    """An ensemble of instances (`studies.svm_bias.instances.Instance`) as stored, float64 numpy."""

    X: np.ndarray
    """(e, n, T, d) tokens x_it."""
    Z: np.ndarray
    """(e, n, d) query tokens z_i."""
    Y: np.ndarray
    """(e, n) labels in {+1, -1}."""
    v: np.ndarray
    """(e, d) the fixed linear head."""

    @classmethod
    def of(cls, inst: Instance) -> "Instances":
        """The arrays of a (torch) `Instance`, on the CPU."""
        return cls(X=to_numpy(inst.X), Z=to_numpy(inst.Z), Y=to_numpy(inst.Y), v=to_numpy(inst.v))


@dataclass(kw_only=True)
class Run:
    """One training run of every member (`training.TrainedRun`, as stored)."""

    W: np.ndarray
    """(e, d, d) the final W (K Q^T for the (K, Q) parametrisation)."""
    loss: np.ndarray
    """(obs, e) training loss at the observed steps."""
    steps: np.ndarray
    """(obs,) the observed steps (0 = initialisation)."""
    frozen_at: np.ndarray
    """(e,) the step at which the underflow guard froze the member; -1 if never."""
    W_traj: np.ndarray | None = None
    """(obs, e, d, d) W at the observed steps (not kept for the equal-score and sweep runs)."""
    K: np.ndarray | None = None
    """(e, d, m) the final K of a (K, Q) run."""
    Q: np.ndarray | None = None
    """(e, d, m) the final Q of a (K, Q) run."""

    @classmethod
    def of(cls, run: TrainedRun, *, trajectory: bool = True) -> "Run":
        """The arrays of a `TrainedRun`, on the CPU (without the W trajectory unless ``trajectory``)."""
        kq = "K" in run.params
        return cls(W=to_numpy(run.W), loss=to_numpy(run.loss), steps=to_numpy(run.steps),
                   frozen_at=to_numpy(run.frozen_at), W_traj=to_numpy(run.W_traj) if trajectory else None,
                   K=to_numpy(run.params["K"]) if kq else None, Q=to_numpy(run.params["Q"]) if kq else None)


@dataclass(kw_only=True)
class SVMs:
    """Att-SVM(alpha_e) of every member, for the alpha its run selected (or opt); an infeasible
    SVM is recorded as ``feasible`` False with NaN solutions."""

    alpha: np.ndarray
    """(e, n) the selected token of each sequence that the SVMs were solved for."""
    opt: np.ndarray
    """(e, n) the optimal token argmax_t gamma_it."""
    feasible: np.ndarray
    """(e,) bool: Att-SVM(alpha) is feasible."""
    support: np.ndarray
    """(e, n, T) bool: the support tokens of the Frobenius SVM."""
    svm_fro: np.ndarray
    """(e, d, d) the Frobenius SVM W^mm_alpha."""
    svm_fro_value: np.ndarray
    """(e,) its norm ||W^mm_alpha||_F."""
    svm_nuc: np.ndarray | None = None
    """(e, d, d) the nuclear SVM, where solved."""
    svm_nuc_value: np.ndarray | None = None
    """(e,) its nuclear norm."""
    svm_op: np.ndarray | None = None
    """(e, d, d) the operator-norm SVM, where solved."""
    svm_op_value: np.ndarray | None = None
    """(e,) its operator norm."""
    svm_fro_ldp: np.ndarray | None = None
    """(e, d, d) the Frobenius SVM by scipy least-distance programming (the cross-check), where solved."""

    def solution(self, norm: str) -> np.ndarray | None:
        """(e, d, d) the SVM in ``norm`` ('fro', 'nuc' or 'op'), None if not solved."""
        return {"fro": self.svm_fro, "nuc": self.svm_nuc, "op": self.svm_op}[norm]


@dataclass(kw_only=True)
class SolvedRun(SVMs, Run):
    """A run and the SVMs of the alpha it selected."""


@dataclass(kw_only=True)
class RandomAlpha:
    """A uniformly random alpha per instance and its Frobenius Att-SVM: the rival of the local-
    optimality checks (any feasible alpha, rather than a locally optimal one)."""

    alpha_random: np.ndarray
    """(R, n) a uniformly random alpha."""
    random_feasible: np.ndarray
    """(R,) bool: Att-SVM(alpha_random) is feasible."""
    random_support: np.ndarray
    """(R, n, T) bool: the support tokens of its Frobenius SVM (all False where infeasible)."""


@dataclass(kw_only=True)
class MainResult(RandomAlpha, SVMs, Run, Instances):
    """The primary run (check A3): its instances, its run and its SVMs (Frobenius, the predicted
    norm and its rival, `theory.rival_norm`; the scipy cross-check), and a random alpha per seed."""


@dataclass(kw_only=True)
class ToyResult(SVMs, Instances):
    """The toy (A1, A2, A6): its instance, the SVMs of alpha = opt in every norm, three runs."""

    ngd: Run
    """W by NGD from 0."""
    kq: Run
    """(K, Q) by per-factor NGD from small random factors."""
    gd: Run
    """W by plain GD from 0."""


@dataclass(kw_only=True)
class NormsResult(Instances):
    """Random instances under four optimisers (A5, A6, EXT) and the naive forward pass."""

    ngd: SolvedRun
    """W by NGD from 0 (SVMs in every norm, and the scipy cross-check)."""
    kq: SolvedRun
    """(K, Q) by per-factor NGD (SVMs in every norm)."""
    spectral: SolvedRun
    """W by spectral descent from 0 (SVMs in every norm)."""
    gd: SolvedRun
    """W by plain GD from 0 (Frobenius SVM)."""
    naive: Run
    """W by NGD through the naive forward pass, on the first min(4, e) instances."""
    gf: SolvedRun
    """(K, Q) along the gradient-flow path (joint NGD at step gf_lr), on the first gf_seeds instances."""
    gf_coarse_W: np.ndarray
    """(gf_seeds, d, d) K Q^T of the same path at step 2 gf_lr, at the same arc length (step gf_steps / 2)."""


@dataclass(kw_only=True)
class EqualResult(SVMs, Run, Instances):
    """Equal non-optimal scores from random W0 by NGD (A4), with the Frobenius SVM of the selected alpha."""

    W0: np.ndarray
    """(e, d, d) the initial W."""


@dataclass(kw_only=True)
class FreeRiders(EqualResult):
    """Equal scores with random queries; for a run that misses opt somewhere, the SVM of the
    sequences that did select it."""

    others_mask: np.ndarray
    """(e, n) bool: sequence i selected its optimal token."""
    svm_others: np.ndarray
    """(e, d, d) the Frobenius SVM of the sequences that selected opt (NaN for runs that are all
    global, or when infeasible)."""


@dataclass(kw_only=True)
class SweepWidth(RandomAlpha, SVMs, Run, Instances):
    """One width of the sweep: the NGD runs and their SVMs, and on the first ``rank_instances``
    instances the SVMs of alpha = opt and the feasibility and support of a uniformly random alpha (A7)."""

    W0: np.ndarray
    """(e, d, d) the initial W."""
    rank_fro_W: np.ndarray
    """(R, d, d) the Frobenius SVM of alpha = opt by scipy (full space), NaN where infeasible."""
    rank_nuc_W: np.ndarray
    """(R, d, d) the nuclear SVM of alpha = opt, NaN where infeasible."""
    rank_feasible: np.ndarray
    """(R,) bool: Att-SVM(opt) is feasible."""


Sweep = dict[str, SweepWidth]
"""The sweep's result: one `SweepWidth` per width d, under ``f"d{d}"`` (`width_key`)."""


@dataclass(kw_only=True)
class SweepRuns(SVMs, Run, Instances):
    """One width of the small-init sweep: the NGD runs (same instances as the sweep) and their SVMs."""

    W0: np.ndarray
    """(e, d, d) the initial W."""


SweepSmall = dict[str, SweepRuns]
"""The small-init sweep's result: one `SweepRuns` per width d, under ``f"d{d}"``."""


def width_key(d: int) -> str:
    """The key of width ``d`` in the `Sweep` (and in the record: ``sweep.d<d>.``)."""
    return f"d{d}"


@dataclass(kw_only=True)
class MmtsResult(Run, Instances):
    """The MMTS single-input example from six prompts (A8), with its global and local SVMs."""

    W0: np.ndarray
    """(6, 2, 2) the initial W: first column p0 = (0, c)."""
    starts: np.ndarray
    """(6,) c of the six initial prompts."""
    svm_global: np.ndarray
    """(2, 2) the Frobenius SVM of alpha = token 1 (the optimal token)."""
    svm_local: np.ndarray
    """(2, 2) the Frobenius SVM of alpha = token 2 (locally optimal)."""
    svm_local_support: np.ndarray
    """(1, 3) bool: the support tokens of ``svm_local``."""


@dataclass(kw_only=True)
class SelfAttnResult(RandomAlpha, SVMs, Run, Instances):
    """Self-attention instances (z_i = x_i1) by NGD from 0, their SVMs and a random alpha each."""


@dataclass(kw_only=True)
class JointResult:
    """MMTS's joint (v, p) training (their ``joint_training`` example), members = variants
    (`theory.JOINT_X3`: 0 = loose, 1 = tight), with the SVMs solved from the data."""

    X: np.ndarray
    """(e, n, T, d) tokens (token 1 = 0)."""
    Y: np.ndarray
    """(e, n) labels."""
    steps: np.ndarray
    """(obs,) observed steps."""
    v_traj: np.ndarray
    """(obs, e, d) the head v_k."""
    p_traj: np.ndarray
    """(obs, e, d) the prompt p_k."""
    loss: np.ndarray
    """(obs, e) training loss."""
    v_mm: np.ndarray
    """(e, d) the v-SVM on the selected tokens (LDP)."""
    v_support: np.ndarray
    """(e, n) bool: the v-SVM's support samples (margin 1 to 1e-6)."""
    p_mm: np.ndarray
    """(e, d) the attention SVM with margin 1 on every sequence (LDP)."""
    p_rel: np.ndarray
    """(e, d) MMTS's relaxed attention SVM: margin 1 on the v-support, 0 elsewhere (LDP)."""


@dataclass(kw_only=True)
class HorizonResult:
    """The toy's gradient along the ray W = m W^mm / ||.||, naive against cancellation-free."""

    margin: np.ndarray
    """(k,) the margins m."""
    rel_error_naive: np.ndarray
    """(k,) relative error of the naive autograd gradient against the closed form."""
    rel_error_stable_autograd: np.ndarray
    """(k,) relative error of autograd through the stable forward pass against the closed form."""
    cos_stable: np.ndarray
    """(k,) cosine of -grad L (closed form) with W^mm."""
    grad_norm: np.ndarray
    """(k,) ||grad L||_F (closed form)."""


@dataclass(kw_only=True)
class NonlinearResult(Instances):
    """The nonlinear (lambda) head: instances, the predicted selection and mixture, the NGD run,
    and per member the Gen-SVM of the predicted selection and the one-token SVM of the final argmax."""

    s_star: np.ndarray
    """(e, n, T) the predicted mixing weights s*_i = argmax over the simplex of Y_i f_i(s)."""
    O_pred: np.ndarray
    """(e, n, T) bool: the predicted selected sets O_i = support of s*_i."""
    slack: np.ndarray
    """(e, n) strict-complementarity slack of s*_i."""
    steps: np.ndarray
    """(obs,) observed steps."""
    W_traj: np.ndarray
    """(obs, e, d, d) W at the observed steps."""
    W: np.ndarray
    """(e, d, d) the final W."""
    loss: np.ndarray
    """(obs, e) training loss."""
    s_final: np.ndarray
    """(e, n, T) the softmax of the final W."""
    W_fin: np.ndarray
    """(e, d, d) Gen-SVM's finite component (from s*, before training)."""
    W_dir: np.ndarray
    """(e, d, d) Gen-SVM's direction."""
    gen_equality_residual: np.ndarray
    """(e,) max |within-O logit difference| of W_dir (0 by construction)."""
    gen_min_margin: np.ndarray
    """(e,) min margin of W_dir against the tokens outside O (1 at the optimum)."""
    W_single: np.ndarray
    """(e, d, d) the Frobenius one-token Att-SVM of alpha = argmax of the final softmax (NaN if infeasible)."""
    single_feasible: np.ndarray
    """(e,) bool: that SVM is feasible."""
    relu: "ReluRuns"
    """The official ReLU-head experiment (observations)."""


@dataclass(kw_only=True)
class ReluRuns(Instances):
    """The official ``multi_token_converge`` experiment (MLP head 1^T ReLU(V^T a), random labels,
    W0 ~ U(+-1/sqrt(d)) as nn.Linear's default, NGD): the runs, the official acceptance rule, and
    for the accepted runs Gen-SVM of the *measured* selection (s > threshold) and the one-token SVM."""

    V: np.ndarray
    """(e, d, d) the head's first layer (unit Frobenius norm)."""
    W: np.ndarray
    """(e, d, d) the final W."""
    s_final: np.ndarray
    """(e, n, T) the final softmax."""
    accepted: np.ndarray
    """(e,) bool: the official notebook keeps the run (`nonlinear.official_acceptance`)."""
    W_dir: np.ndarray
    """(e, d, d) Gen-SVM's direction for the measured selection (NaN where not accepted or infeasible)."""
    W_single: np.ndarray
    """(e, d, d) the one-token SVM of the final argmax (NaN where not accepted or infeasible)."""


def _join(cls: type, *parts: Any, **more: Any):
    """A ``cls`` from the fields of ``parts`` (dataclasses ``cls`` inherits from) and ``more``."""
    return cls(**{f.name: getattr(p, f.name) for p in parts for f in dataclasses.fields(p)}, **more)


# ------------------------------------------------------------------------------ SVM solving
@dataclass
class SVMCache:
    """Solves Att-SVM once per (instance, alpha, norm) for every phase of one run (in memory only)."""

    solutions: dict = field(default_factory=dict, metadata=TRANSIENT)
    """(X, Z, alpha, norm) -> `SVMSolution`, or the `InfeasibleSVMError` it raised."""
    problems: dict = field(default_factory=dict, metadata=TRANSIENT)
    """Compiled cvxpy problems, one per shape and norm, owned by this run."""

    def solve(self, X: np.ndarray, Z: np.ndarray, alpha: np.ndarray, norm: str, method: str = "cvx") -> SVMSolution:
        """``method='ldp'`` (Frobenius only): scipy least-distance programming instead of cvxpy,
        ~10x faster, with the same margins, support and KKT verification."""
        key = (X.tobytes(), Z.tobytes(), tuple(int(a) for a in alpha), norm, method)
        if key not in self.solutions:
            try:
                if method == "ldp" and norm == "fro":
                    self.solutions[key] = ldp_solution(X, Z, alpha)
                else:
                    self.solutions[key] = att_svm(X, Z, alpha, norm, problems=self.problems)
            except InfeasibleSVMError as err:
                self.solutions[key] = err
        out = self.solutions[key]
        if isinstance(out, InfeasibleSVMError):
            raise out
        return out


def ldp_solution(X: np.ndarray, Z: np.ndarray, alpha: np.ndarray) -> SVMSolution:
    """The Frobenius Att-SVM by scipy LDP as an `SVMSolution` (margins, support, KKT-verified)."""
    W = att_svm_ldp(X, Z, alpha)[0]
    m = margins(X[None], Z[None], np.asarray(alpha)[None], W[None])[0]
    sol = SVMSolution(W=W, norm="fro", value=float(np.linalg.norm(W)), margins=m,
                      support=m <= 1.0 + SUPPORT_TOL, status="optimal (ldp)")
    verify_kkt(sol, X, Z, np.asarray(alpha))
    return sol


def solve_members(inst: Instance, alpha: np.ndarray, norms: Sequence[str], cache: SVMCache,
                  *, ldp: bool = False, method: str = "cvx") -> SVMs:
    """Att-SVM(alpha_e) of every member in each norm (and with ``ldp`` the scipy cross-check of
    the Frobenius one).  An infeasible SVM is recorded (``feasible`` False, NaN solutions); any
    other solver failure raises."""
    X, Z = inst.X.detach().cpu().double().numpy(), inst.Z.detach().cpu().double().numpy()
    e, n, T, d = X.shape
    sol = {norm: np.full((e, d, d), np.nan) for norm in norms}
    value = {norm: np.full(e, np.nan) for norm in norms}
    fro_ldp = np.full((e, d, d), np.nan) if ldp else None
    feasible, support = np.ones(e, dtype=bool), np.zeros((e, n, T), dtype=bool)
    for i in range(e):
        try:
            for norm in norms:
                s = cache.solve(X[i], Z[i], alpha[i], norm, method)
                sol[norm][i], value[norm][i] = s.W, s.value
                if norm == "fro":
                    support[i] = s.support
            if ldp:
                fro_ldp[i] = att_svm_ldp(X[i], Z[i], alpha[i])[0]
        except InfeasibleSVMError:
            feasible[i] = False
            for norm in norms:
                sol[norm][i], value[norm][i] = np.nan, np.nan
    return SVMs(alpha=alpha.astype(np.int64), opt=inst.opt.cpu().numpy().astype(np.int64), feasible=feasible,
                support=support, svm_fro=sol["fro"], svm_fro_value=value["fro"],
                svm_nuc=sol.get("nuc"), svm_nuc_value=value.get("nuc"),
                svm_op=sol.get("op"), svm_op_value=value.get("op"), svm_fro_ldp=fro_ldp)


def final_alpha(inst: Instance, W: torch.Tensor) -> np.ndarray:
    """alpha = argmax of the final softmax (e, n), as in the official code (spec pitfall 2)."""
    return selected_tokens(inst.X, W, inst.Z).cpu().numpy()


def solve_run(inst: Instance, run: TrainedRun, norms: Sequence[str], cache: SVMCache, *, ldp: bool = False,
              trajectory: bool = True, method: str = "cvx") -> SolvedRun:
    """The run and the SVMs of the alpha its final W selects."""
    inst = inst.to(device="cpu")
    svms = solve_members(inst, final_alpha(inst, run.W.cpu().double()), norms, cache, ldp=ldp, method=method)
    return _join(SolvedRun, Run.of(run, trajectory=trajectory), svms)


def random_alpha(inst: Instance, s: Stream, R: int, cache: SVMCache, method: str = "cvx") -> RandomAlpha:
    """A uniformly random alpha (members 0..R-1 of ``s``) for each of the first R instances, with
    its Frobenius SVM's feasibility and support."""
    _, n, T, _ = inst.X.shape
    X, Z = inst.X[:R].detach().cpu().double().numpy(), inst.Z[:R].detach().cpu().double().numpy()
    alpha = s.integers(0, T, (n,), members=R).numpy()
    feasible, support = np.zeros(R, dtype=bool), np.zeros((R, n, T), dtype=bool)
    for r in range(R):
        try:
            support[r] = cache.solve(X[r], Z[r], alpha[r], "fro", method).support
            feasible[r] = True
        except InfeasibleSVMError:
            pass
    return RandomAlpha(alpha_random=alpha, random_feasible=feasible, random_support=support)


def _on_device(inst: Instance, cfg: Config) -> Instance:
    return inst.to(device=cfg.torch_device, dtype=cfg.torch_dtype)


# ---------------------------------------------------------------------------- sub-experiments
def solver(cfg: Config) -> SVMCache:
    """The SVM cache every later phase shares (stores nothing)."""
    return SVMCache()


def main(cfg: Config, *, solver: SVMCache, progress: bool = True) -> MainResult:
    """The primary run: exactly the config's flat fields (check A3)."""
    n, T, d = instance_dims(cfg.instance, cfg.n, cfg.T, cfg.d)
    s = stream(cfg, "main")
    inst = make_instance(cfg.instance, s.child("instances"), cfg.n_seeds, n=cfg.n, T=cfg.T, d=cfg.d,
                         angle_deg=cfg.angle_deg, device=cfg.torch_device, dtype=torch.float64)
    init = init_params(cfg.param, s.child("init"), cfg.n_seeds, d, cfg.rank_m, cfg.init_scale,
                       dtype=cfg.torch_dtype, device=cfg.torch_device)
    run = train_attention(_on_device(inst, cfg), init, optimizer=cfg.optimizer, lr=cfg.lr, steps=cfg.steps,
                          loss=cfg.loss, ngd_per=cfg.ngd_per, grad_floor=cfg.grad_floor,
                          progress=progress, desc="main")
    # the predicted norm and its rival (A3's alternative), and the Frobenius SVM of a random alpha
    norms = tuple(dict.fromkeys(("fro", predicted_norm(cfg.param, cfg.optimizer), rival_norm(cfg.param, cfg.optimizer))))
    rand = random_alpha(inst, s.child("alpha"), cfg.n_seeds, solver)
    return _join(MainResult, Instances.of(inst), solve_run(inst, run, norms, solver, ldp=True), rand)


def toy(cfg: Config, *, solver: SVMCache, progress: bool = True) -> ToyResult:
    """The two-sequence toy: W by NGD (A1), (K, Q) by per-factor NGD (A2), W by plain GD (A6)."""
    c = cfg.toy
    inst = toy_instance(c.angle_deg, 1)
    dev = _on_device(inst, cfg)
    zeros = {"W": torch.zeros((1, 2, 2), dtype=cfg.torch_dtype, device=cfg.torch_device)}
    common = dict(loss=c.loss, grad_floor=cfg.grad_floor, progress=progress)
    ngd = train_attention(dev, zeros, optimizer="ngd", lr=c.lr, steps=c.steps, desc="toy W", **common)
    kq_init = init_params("KQ", stream(cfg, "toy").child("init"), 1, 2, c.rank_m, c.kq_init,
                          dtype=cfg.torch_dtype, device=cfg.torch_device)
    kq = train_attention(dev, kq_init, optimizer="ngd", lr=c.kq_lr, steps=c.steps, ngd_per=c.ngd_per,
                         desc="toy KQ", **common)
    gd = train_attention(dev, zeros, optimizer="gd", lr=c.gd_lr, steps=c.gd_steps, desc="toy GD", **common)
    svms = solve_members(inst, inst.opt.numpy(), NORMS, solver, ldp=True)  # the toy is drawn on the CPU
    return _join(ToyResult, Instances.of(inst), svms, ngd=Run.of(ngd), kq=Run.of(kq), gd=Run.of(gd))


def norms(cfg: Config, *, solver: SVMCache, progress: bool = True) -> NormsResult:
    """Random instances under W-NGD, (K,Q)-NGD, W-spectral (A5, extension), plain GD (A6) and the
    naive forward pass (precision horizon; autograd, so this phase runs with grad on)."""
    c = cfg.norms
    e = c.n_seeds
    inst = random_instance(stream(cfg, "main").child("instances"), e, c.n, c.T, c.d, device=cfg.torch_device)
    dev = _on_device(inst, cfg)
    zeros = {"W": torch.zeros((e, c.d, c.d), dtype=cfg.torch_dtype, device=cfg.torch_device)}
    kq_init = init_params("KQ", stream(cfg, "norms").child("init"), e, c.d, c.rank_m, c.kq_init,
                          dtype=cfg.torch_dtype, device=cfg.torch_device)
    common = dict(loss=c.loss, grad_floor=cfg.grad_floor, progress=progress)
    runs = {
        "ngd": train_attention(dev, zeros, optimizer="ngd", lr=c.lr, steps=c.steps, desc="norms W-NGD", **common),
        "kq": train_attention(dev, kq_init, optimizer="ngd", lr=c.kq_lr, steps=c.steps, ngd_per=c.ngd_per,
                              desc="norms KQ-NGD", **common),
        "spectral": train_attention(dev, zeros, optimizer="spectral", lr=c.lr, steps=c.steps,
                                    desc="norms spectral", **common),
    }
    solved = {name: solve_run(inst, trained, NORMS, solver, ldp=name == "ngd") for name, trained in runs.items()}
    gd = train_attention(dev, zeros, optimizer="gd", lr=c.gd_lr, steps=c.gd_steps, desc="norms GD", **common)
    solved["gd"] = solve_run(inst, gd, ("fro", "nuc"), solver)       # nuc: the rival slope of A6
    k = min(NAIVE_SEEDS, e)
    sub = Instance(dev.X[:k], dev.Z[:k], dev.Y[:k], dev.v[:k])
    naive = train_attention(sub, {"W": zeros["W"][:k]}, optimizer="ngd", lr=c.lr, steps=c.steps,
                            forward="naive", desc="norms naive", **common)
    # the gradient-flow path of (K, Q): joint NGD at gf_lr and at 2 gf_lr in one ensemble (lr per member)
    g = c.gf_seeds
    gf_inst = Instance(*(torch.cat([t[:g], t[:g]]) for t in (dev.X, dev.Z, dev.Y, dev.v)))
    gf_init = {k: torch.cat([v[:g], v[:g]]) for k, v in kq_init.items()}
    lr = torch.tensor([c.gf_lr] * g + [2 * c.gf_lr] * g, dtype=cfg.torch_dtype, device=cfg.torch_device)
    gf = train_attention(gf_inst, gf_init, optimizer="ngd", lr=lr, steps=c.gf_steps, ngd_per="joint",
                         desc="norms KQ gradient flow", **common)
    half = int(np.nonzero(gf.steps == c.gf_steps // 2)[0][0])
    fine = TrainedRun(gf.steps, gf.W_traj[:, :g], gf.loss[:, :g], {k: v[:g] for k, v in gf.params.items()},
                      gf.frozen_at[:g])
    sub_inst = Instance(inst.X[:g], inst.Z[:g], inst.Y[:g], inst.v[:g])
    solved_gf = solve_run(sub_inst, fine, ("fro", "nuc"), solver)
    return _join(NormsResult, Instances.of(inst), **solved, naive=Run.of(naive), gf=solved_gf,
                 gf_coarse_W=to_numpy(gf.W_traj[half, g:]))


def _equal_scores(cfg: Config, queries: str, solver: SVMCache, progress: bool,
                  norms: Sequence[str] = ("fro",)) -> tuple[Instance, EqualResult]:
    c = cfg.equal
    s = stream(cfg, "equal")
    inst = equal_scores_instance(s.child("instances"), c.n_inits, c.n, c.T, c.d, queries=queries,
                                 device=cfg.torch_device)
    init = init_params("W", s.child("init"), c.n_inits, c.d, c.d, c.init_std,
                       dtype=cfg.torch_dtype, device=cfg.torch_device)
    run = train_attention(_on_device(inst, cfg), init, optimizer="ngd", lr=c.lr, steps=c.steps, loss=c.loss,
                          grad_floor=cfg.grad_floor, progress=progress, desc=f"equal scores ({queries})")
    solved = solve_run(inst, run, norms, solver, trajectory=False)
    return inst, _join(EqualResult, Instances.of(inst), solved, W0=to_numpy(init["W"]))


def equal(cfg: Config, *, solver: SVMCache, progress: bool = True) -> EqualResult:
    """Equal non-opt scores with orthonormal queries from random initialisations (A4); the nuclear
    SVM is the rival direction of A4's direction check."""
    return _equal_scores(cfg, "orthonormal", solver, progress, norms=("fro", "nuc"))[1]


def equal_rq(cfg: Config, *, solver: SVMCache, progress: bool = True) -> FreeRiders:
    """Equal scores with random queries, and for each run that misses opt, the SVM of the sequences
    that picked it (the free-rider check)."""
    inst, res = _equal_scores(cfg, "random", solver, progress)
    X, Z, opt = inst.X.cpu().numpy(), inst.Z.cpu().numpy(), inst.opt.cpu().numpy()
    others = res.alpha == opt                                               # (e, n)
    W_others = np.full((cfg.equal.n_inits, cfg.equal.d, cfg.equal.d), np.nan)
    for i in np.nonzero(~others.all(axis=1))[0]:
        keep = others[i]
        if keep.any():
            try:
                W_others[i] = solver.solve(X[i][keep], Z[i][keep], opt[i][keep], "fro").W
            except InfeasibleSVMError:
                pass
    return _join(FreeRiders, res, others_mask=others, svm_others=W_others)


def _sweep_width(cfg: Config, d: int, scale: float, solver: SVMCache, progress: bool, tag: str):
    """One width of the sweep at init scale ``scale``: instances, W0 and the NGD run.  The instances
    and the unit-scale draw of W0 are the same at every scale (streams keyed by d only), so the two
    init scales are paired."""
    c = cfg.sweep
    s = stream(cfg, "sweep", d)
    inst = random_instance(s.child("instances"), c.n_inits, c.n, c.T, d, device=cfg.torch_device)
    init = init_params("W", s.child("init"), c.n_inits, d, d, scale, dtype=cfg.torch_dtype, device=cfg.torch_device)
    run = train_attention(_on_device(inst, cfg), init, optimizer="ngd", lr=c.lr, steps=c.steps, loss=c.loss,
                          grad_floor=cfg.grad_floor, progress=progress, desc=f"sweep{tag} d={d}")
    solved = solve_run(inst, run, ("fro",), solver, trajectory=False, method="ldp")
    return inst.to(device="cpu"), init, solved, s


def sweep(cfg: Config, *, solver: SVMCache, progress: bool = True) -> Sweep:
    """Global/local fractions (default init scale) and SVM rank/feasibility across widths (A7)."""
    c = cfg.sweep
    R = c.rank_instances
    out: Sweep = {}
    for d in c.widths:
        inst, init, solved, s = _sweep_width(cfg, d, c.init_std, solver, progress, "")
        # the SVM rank study, alpha = opt, and the feasibility and support of a uniformly random alpha
        X, Z = inst.X[:R].numpy(), inst.Z[:R].numpy()
        opt = inst.opt[:R].numpy()
        W_ldp, W_nuc = np.full((R, d, d), np.nan), np.full((R, d, d), np.nan)
        feas_opt = np.zeros(R, dtype=bool)
        for r in range(R):
            try:
                W_ldp[r] = att_svm_ldp(X[r], Z[r], opt[r])[0]
                W_nuc[r] = solver.solve(X[r], Z[r], opt[r], "nuc").W
                feas_opt[r] = True
            except InfeasibleSVMError:
                pass
        rand = random_alpha(inst, s.child("alpha"), R, solver, method="ldp")
        out[width_key(d)] = _join(SweepWidth, Instances.of(inst), solved, rand,
                                  W0=to_numpy(init["W"]), rank_fro_W=W_ldp, rank_nuc_W=W_nuc, rank_feasible=feas_opt)
    return out


def sweep_small(cfg: Config, *, solver: SVMCache, progress: bool = True) -> SweepSmall:
    """The same instances and init directions as the sweep, from W0 at ``sweep.small_init_std``."""
    c = cfg.sweep
    out: SweepSmall = {}
    for d in c.widths:
        inst, init, solved, _ = _sweep_width(cfg, d, c.small_init_std, solver, progress, " small init")
        out[width_key(d)] = _join(SweepRuns, Instances.of(inst), solved, W0=to_numpy(init["W"]))
    return out


def mmts(cfg: Config, *, solver: SVMCache, progress: bool = True) -> MmtsResult:
    """The MMTS single-input example from the six prompts p0 = (0, c) (A8)."""
    c = cfg.mmts
    e = len(MMTS_STARTS)
    inst = mmts_single_instance(e)
    W0 = torch.zeros((e, 2, 2), dtype=torch.float64)
    W0[:, 1, 0] = torch.tensor(MMTS_STARTS, dtype=torch.float64)           # first column p0 = (0, c)
    run = train_attention(_on_device(inst, cfg), {"W": W0.to(cfg.torch_device, cfg.torch_dtype)}, optimizer="ngd",
                          lr=c.lr, steps=c.steps, loss=c.loss, grad_floor=cfg.grad_floor,
                          progress=progress, desc="mmts")
    X, Z = inst.X[0].numpy(), inst.Z[0].numpy()
    glob = solver.solve(X, Z, np.array([0]), "fro")
    local = solver.solve(X, Z, np.array([1]), "fro")
    return _join(MmtsResult, Instances.of(inst), Run.of(run), W0=to_numpy(W0), starts=np.asarray(MMTS_STARTS),
                 svm_global=glob.W, svm_local=local.W, svm_local_support=local.support)


def self_attn(cfg: Config, *, solver: SVMCache, progress: bool = True) -> SelfAttnResult:
    """Self-attention instances (z_i = x_i1), W by NGD from 0, with the Frobenius and nuclear SVMs of
    the selected alpha and the Frobenius SVM of a uniformly random alpha."""
    from studies.svm_bias.instances import self_attention_instance

    c = cfg.self_attn
    s = stream(cfg, "self-attn")
    inst = self_attention_instance(s.child("instances"), c.n_seeds, c.n, c.T, c.d, device=cfg.torch_device)
    zeros = {"W": torch.zeros((c.n_seeds, c.d, c.d), dtype=cfg.torch_dtype, device=cfg.torch_device)}
    run = train_attention(_on_device(inst, cfg), zeros, optimizer="ngd", lr=c.lr, steps=c.steps, loss=c.loss,
                          grad_floor=cfg.grad_floor, progress=progress, desc="self-attention")
    rand = random_alpha(inst, s.child("alpha"), c.n_seeds, solver)
    return _join(SelfAttnResult, Instances.of(inst), solve_run(inst, run, ("fro", "nuc"), solver), rand)


def joint(cfg: Config, *, progress: bool = True) -> JointResult:
    """MMTS joint training: f(X) = v^T X^T softmax(X p), logistic loss, NGD on v and on p (each
    normalised per tensor, as in MMTS's notebook), from v0 = (-1, 0), p0 = (0, -1), for both
    variants of the example; autograd through the cancellation-free forward pass."""
    from studies.svm_bias.model import loss_fn, margins_stable
    from studies.svm_bias.svm import ldp
    from studies.svm_bias.theory import JOINT_P0, JOINT_V0, JOINT_X3

    c, dt = cfg.joint, torch.float64
    variants = ("loose", "tight")
    x12 = [[1.0, 1.0], [1.0, -1.0]]
    second = torch.tensor([x12 + [list(JOINT_X3[v])] for v in variants], dtype=dt)     # (e, n, d)
    X = torch.stack([torch.zeros_like(second), second], dim=2)                          # (e, n, T=2, d)
    Y = torch.tensor([[1.0, -1.0, 1.0]] * len(variants), dtype=dt)
    e = len(variants)
    v = torch.tensor([JOINT_V0] * e, dtype=dt).requires_grad_(True)
    p = torch.tensor([JOINT_P0] * e, dtype=dt).requires_grad_(True)
    observe = set(observation_steps(c.steps).tolist())
    steps, vs, ps, losses = [], [], [], []
    for k in range(c.steps + 1):
        logits = torch.einsum("enta,ea->ent", X, p)
        gamma = Y[..., None] * torch.einsum("enta,ea->ent", X, v)
        loss = loss_fn(margins_stable(logits, gamma), c.loss).mean(dim=-1)                  # (e,)
        if k in observe:
            steps.append(k), vs.append(v.detach().clone()), ps.append(p.detach().clone())
            losses.append(loss.detach().clone())
        if k == c.steps:
            break
        gv, gp = torch.autograd.grad(loss.sum(), [v, p])
        with torch.no_grad():
            for param, g in ((v, gv), (p, gp)):
                norm = g.norm(dim=-1, keepdim=True)
                param -= c.lr * torch.where(norm > 0, g / torch.where(norm > 0, norm, 1.0), 0.0)
    # the SVMs, alpha_i = token 2 (the selected token: the first token is 0 and scores 0)
    Xn, Yn = X.numpy(), Y.numpy()
    v_mm, p_mm, p_rel = np.zeros((e, 2)), np.zeros((e, 2)), np.zeros((e, 2))
    support = np.zeros((e, 3), dtype=bool)
    for j in range(e):
        sel = Xn[j, :, 1]                                                                   # (n, d)
        v_mm[j] = ldp(Yn[j][:, None] * sel, np.ones(3))
        support[j] = np.abs(Yn[j] * (sel @ v_mm[j]) - 1) <= 1e-6
        G = sel - Xn[j, :, 0]                                                               # key differences
        p_mm[j] = ldp(G, np.ones(3))
        p_rel[j] = ldp(G, support[j].astype(float))
    return JointResult(X=Xn, Y=Yn, steps=np.asarray(steps), v_traj=torch.stack(vs).numpy(),
                       p_traj=torch.stack(ps).numpy(), loss=torch.stack(losses).numpy(), v_mm=v_mm,
                       v_support=support, p_mm=p_mm, p_rel=p_rel)


def horizon(cfg: Config) -> HorizonResult:
    """Gradients along the ray m W^mm / margin of the toy: naive autograd vs cancellation-free."""
    c = cfg.horizon
    inst = _on_device(toy_instance(c.angle_deg, 1), cfg)
    W_mm = torch.as_tensor(toy_solutions(c.angle_deg)["W_fro"], dtype=cfg.torch_dtype, device=cfg.torch_device)
    margins = np.unique(np.concatenate([np.arange(0.5, 60.0, 0.25), np.linspace(60.0, 700.0, 65)]))
    gamma = inst.gamma
    rel_naive, rel_autograd, cos_stable, g_stable_norm = [], [], [], []
    for m in margins:
        W = (float(m) * W_mm)[None]                                         # support margins are exactly m
        _, g_stable = risk_gradient_W(W, inst.X, inst.Z, gamma, c.loss)
        grads = {}
        for forward in ("naive", "stable"):
            Wr = W.clone().requires_grad_(True)
            (grads[forward],) = torch.autograd.grad(empirical_risk({"W": Wr}, inst.X, inst.Z, gamma, c.loss,
                                                                   forward).sum(), Wr)
        scale = g_stable.abs().max()                                        # avoid underflow in the norms
        if scale > 0:
            ref = (g_stable / scale).norm()
            rel_naive.append(float((grads["naive"] / scale - g_stable / scale).norm() / ref))
            rel_autograd.append(float((grads["stable"] / scale - g_stable / scale).norm() / ref))
            cos_stable.append(float(-(g_stable / scale * W_mm).sum() / (ref * W_mm.norm())))
        else:
            rel_naive.append(np.nan), rel_autograd.append(np.nan), cos_stable.append(np.nan)
        g_stable_norm.append(float(scale * ref) if scale > 0 else 0.0)
    return HorizonResult(margin=margins, rel_error_naive=np.array(rel_naive),
                         rel_error_stable_autograd=np.array(rel_autograd), cos_stable=np.array(cos_stable),
                         grad_norm=np.array(g_stable_norm))


def nonlinear(cfg: Config, *, solver: SVMCache, progress: bool = True) -> NonlinearResult:
    """The nonlinear head Y f = v^T a - lam ||a||^2 (`studies.svm_bias.nonlinear`): instances whose
    predicted selection holds two or more tokens somewhere, W by NGD from 0 (closed-form gradient,
    tested against autograd), Gen-SVM of the predicted selection, and the one-token SVM of the final
    argmax."""
    from workbench.train import NormalizedGD, train

    from studies.svm_bias.nonlinear import gen_svm, lam_head_instance, lam_head_risk_gradient

    c = cfg.nonlinear
    inst, mix = lam_head_instance(stream(cfg, "nonlinear").child("instances"), c.n_seeds, c.n, c.T, c.d, c.lam,
                                  min_weight=c.min_weight, min_slack=c.min_slack)
    dev = _on_device(inst, cfg)

    def risk(params, step):                                       # (e,) and {"W": (e, d, d)}, closed form
        losses, grad = lam_head_risk_gradient(params["W"], dev.X, dev.Z, dev.v, c.lam, c.loss)
        return losses, {"W": grad}

    zeros = {"W": torch.zeros((c.n_seeds, c.d, c.d), dtype=cfg.torch_dtype, device=cfg.torch_device)}
    result = train(zeros, risk, NormalizedGD(lr=c.lr), c.steps, observers={"W": lambda p: p["W"]},
                   observe_at=observation_steps(c.steps), underflow="freeze", grad_floor=cfg.grad_floor,
                   progress=progress, desc="nonlinear head")
    W = to_numpy(result.params["W"]).astype(np.float64)
    X, Z = to_numpy(inst.X), to_numpy(inst.Z)
    logits = np.einsum("enta,eab,enb->ent", X, W, Z)
    s_final = np.exp(logits - logits.max(axis=-1, keepdims=True))
    s_final /= s_final.sum(axis=-1, keepdims=True)
    e, d = c.n_seeds, c.d
    W_fin, W_dir, W_single = np.zeros((e, d, d)), np.zeros((e, d, d)), np.full((e, d, d), np.nan)
    eq, margin, feasible = np.zeros(e), np.zeros(e), np.zeros(e, dtype=bool)
    for j in range(e):
        g = gen_svm(X[j], Z[j], mix.support[j], mix.s_star[j])
        W_fin[j], W_dir[j], eq[j], margin[j] = g.W_fin, g.W_dir, g.equality_residual, g.min_margin
        try:
            W_single[j] = solver.solve(X[j], Z[j], s_final[j].argmax(axis=-1), "fro", "ldp").W
            feasible[j] = True
        except InfeasibleSVMError:
            pass
    return NonlinearResult(relu=_relu_runs(cfg, solver, progress), X=X, Z=Z, Y=to_numpy(inst.Y), v=to_numpy(inst.v),
                           s_star=mix.s_star, O_pred=mix.support,
                           slack=mix.slack, steps=to_numpy(result.steps), W_traj=to_numpy(result.trajectory["W"]),
                           W=W, loss=to_numpy(result.trajectory["loss"]), s_final=s_final, W_fin=W_fin, W_dir=W_dir,
                           gen_equality_residual=eq, gen_min_margin=margin, W_single=W_single,
                           single_feasible=feasible)


def _relu_runs(cfg: Config, solver: SVMCache, progress: bool) -> ReluRuns:
    """The official ReLU-head runs (`ReluRuns`); Gen-SVM with W_fin from the final softmax, as in
    the official ``W_svm_solver`` (there W_fin is the projection of W on S_fin, an identity)."""
    from workbench.train import NormalizedGD, train

    from studies.svm_bias.nonlinear import gen_svm, official_acceptance, relu_head_instance, relu_head_risk_gradient

    c = cfg.nonlinear
    s = stream(cfg, "nonlinear-relu")
    inst, V = relu_head_instance(s.child("instances"), c.relu_runs, c.n, c.T, c.d)
    W0 = (s.child("init").uniform((c.d, c.d), members=c.relu_runs, dtype=torch.float64) * 2 - 1) / np.sqrt(c.d)
    dev, Vd = _on_device(inst, cfg), V.to(device=cfg.torch_device, dtype=cfg.torch_dtype)

    def risk(params, step):
        losses, grad = relu_head_risk_gradient(params["W"], dev.X, dev.Z, Vd, dev.Y, c.loss)
        return losses, {"W": grad}

    result = train({"W": W0.to(device=cfg.torch_device, dtype=cfg.torch_dtype)}, risk, NormalizedGD(lr=c.lr),
                   c.relu_steps, observe_at=np.array([0, c.relu_steps]), underflow="freeze",
                   grad_floor=cfg.grad_floor, progress=progress, desc="nonlinear ReLU head")
    W = to_numpy(result.params["W"]).astype(np.float64)
    X, Z, Y = to_numpy(inst.X), to_numpy(inst.Z), to_numpy(inst.Y)
    logits = np.einsum("enta,eab,enb->ent", X, W, Z)
    s_final = np.exp(logits - logits.max(axis=-1, keepdims=True))
    s_final /= s_final.sum(axis=-1, keepdims=True)
    accepted = official_acceptance(s_final, Y)
    e, d = c.relu_runs, c.d
    W_dir, W_single = np.full((e, d, d), np.nan), np.full((e, d, d), np.nan)
    for j in np.nonzero(accepted)[0]:
        O = s_final[j] > c.threshold
        try:
            W_dir[j] = gen_svm(X[j], Z[j], O, np.where(O, s_final[j], 1.0)).W_dir
            W_single[j] = solver.solve(X[j], Z[j], s_final[j].argmax(axis=-1), "fro", "ldp").W
        except InfeasibleSVMError:
            accepted[j] = False                     # the official notebook also drops infeasible runs
    return ReluRuns(X=X, Z=Z, Y=Y, v=to_numpy(inst.v), V=to_numpy(V), W=W, s_final=s_final, accepted=accepted,
                    W_dir=W_dir, W_single=W_single)


def _reads(name: str):
    """The inputs of a battery phase: its own sub-config and the run-wide gradient floor (the seed,
    dtype and device are part of every phase's cache key), so sweeping a primary field reuses it."""
    return lambda cfg: (getattr(cfg, name), cfg.grad_floor)


PHASES = (
    Phase("solver", solver),                                # the shared SVM cache (stores nothing)
    Phase("main", main, needs=("solver",)),                 # the primary run: always recomputed
    Phase("toy", toy, needs=("solver",), inputs=_reads("toy")),
    Phase("norms", norms, needs=("solver",), grad=True, inputs=_reads("norms")),  # naive forward: autograd
    Phase("equal", equal, needs=("solver",), inputs=_reads("equal")),
    Phase("equal_rq", equal_rq, needs=("solver",), inputs=_reads("equal")),
    Phase("sweep", sweep, needs=("solver",), inputs=_reads("sweep")),
    Phase("sweep_small", sweep_small, needs=("solver",), inputs=_reads("sweep")),
    Phase("mmts", mmts, needs=("solver",), inputs=_reads("mmts")),
    Phase("self_attn", self_attn, needs=("solver",), inputs=_reads("self_attn")),
    Phase("joint", joint, grad=True, inputs=_reads("joint")),  # autograd through the stable forward pass
    Phase("horizon", horizon, grad=True, inputs=lambda cfg: cfg.horizon),  # autograd against the closed form
    Phase("nonlinear", nonlinear, needs=("solver",), inputs=_reads("nonlinear")),
)
PRIMARY = PHASES[:2]
"""The phases of ``suite=False``: the primary run alone."""


def run(config: Config, *, progress: bool = True) -> Record:
    """The primary run and (``suite=True``) the battery; deterministic given the config."""
    from studies.svm_bias import NAME

    return run_phases(NAME, config, PHASES if config.suite else PRIMARY, progress=progress)
