"""The acceptance checks of the rank-collapse study (spec section 4, checks 1-8, and the two
extensions): one function per claim group.  Every check reads the typed results of the record
(`workbench.phases.load`) and compares its measurement with a closed-form prediction from
`studies.rank_collapse.theory`; nothing is re-simulated here.

Kinds: a ``theory`` check names its nearest rival and the rival's value of the same measured
quantity (a slope of 1 for an exponential law against 3 for the cubic one, "no collapse" against
collapse, ...); an ``identity`` is exact by the algebra of the model (the path expansion, uniform
attention, the two-token rewrite, the vanishing gradient at X = 1 x^T) and is tested to rounding;
``numerics`` is the extended-precision pass against float64; an ``observation`` is a spec threshold
no theorem predicts."""
from __future__ import annotations


import math
from dataclasses import replace as _replace

import numpy as np

from workbench.checks import Check
from workbench.linalg import loglog_slope
from workbench.phases import load
from workbench.record import Record

from studies.rank_collapse import theory
from studies.rank_collapse.trained import Trained
from studies.rank_collapse.simulate import (Bound, Clustering, Composed, Gradients, Noci, Paths, Precision, Regime, Scaling,
                                            Scan, Sweep, TwoToken, Witness)

FIT_WINDOW = (1e-12, 1e-5)
"""Relative output residuals inside which the cubic (and 9th-power) laws are fitted: above the
float64 floor (about 2e-16) by four decades, below the nonlinear regime of the softmax expansion."""
COLLAPSE_LAYER = 8
"""Layer at which the pure SAN must sit at the float floor (spec check 3)."""
SKIP_LAYER = 12
"""Layer at which skips must still hold a residual (spec check 4)."""
NOCI_Z = 4.0
"""Monte Carlo tolerance of the uniform-attention closed form, in standard errors."""
TRAINED_COLLAPSE_BAR = 1e-2
"""A trained network has collapsed when its last layer's mean relative residual is below 1e-2: the
resolution of Dong et al.'s Fig. 2, whose linear axis [-0.01, 1.01] draws anything below it as 0
(what the paper calls collapse).  Fixed before training anything."""
SHORT_PATHS = 2
"""Paths of length <= 2 are the 'short' ones of the path-length check."""
SHORT_PATH_FRACTION = 0.8
"""Short paths dominate when they recover at least 80% of what the attention adds to the task over
the length-0 path alone (accuracy for sorting, loss for the circle).  A threshold stated before
measuring, not derived from a constant: the theory (Sec. 3.2, 4.3) says long paths are nearly
token-uniform, not how much of the task the short ones carry."""
NEGATIVE_RESULTS = {
    "trained_san_collapses_sort": "a negative result, reported as an observation after measuring (the bar was fixed first): the trained "
                                  "SAN on sorting keeps rho_L well above 1e-2; training grows the query/key weights, "
                                  "outside the bounded-beta premise of Thm 2.2 (see the chapter)",
    "short_paths_carry_sort": "a result short of the pre-stated bar, reported as an observation after measuring: paths of length <= 2 "
                              "carry most but not 80% of the accuracy gain in every seed (see the chapter)",
    "short_paths_carry_circle": "a negative result, reported as an observation after measuring: on the circle task the truncation to "
                                "length <= 2 is worse than the length-0 path; the long paths matter (see the chapter)",
}
"""Trained-model claims whose bars were stated before training and which the measurement at the
`quick` preset missed: reported as observations (measured value, bar, rival; "not observed"),
not retuned, and named in the chapter's "where theory and simulation part ways"."""
SKIP_Z = 4.0
"""Tolerance of the SAN+skip decay rate, in standard errors over seeds."""
PRECISION_MARGIN = 30
"""Digits kept above the working-precision floor: extended-precision residuals below
10^-(digits - PRECISION_MARGIN) are not fitted."""
SLOPE_BAND = (2.9, 3.1)
"""Accepted cubic slopes (one layer, and layer to layer through depth)."""
GROWTH_BAND = (math.log10(2.8), math.log10(3.2))
"""Accepted slopes of log10(-log10 rho_l) against l (the log of the per-layer growth factor of
-log rho, log10 3 = 0.477 for the cubic law).  From the law itself: -log rho_(l+1) / -log rho_l =
3 - log c_l / log rho_l, and with constants |log10 c_l| <= 1 at |log10 rho_l| >= 5 (the fit
window) the factor stays in [2.8, 3.2]; fixed before the measurement."""


# ----------------------------------------------------------------------------- helpers
def fitted_slopes(x: np.ndarray, y: np.ndarray, rho_out: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Least-squares log-log slope per (scale, seed) over the points with rho_out inside ``window``;
    NaN where fewer than 3 points qualify.  x, y, rho_out (S, N, E) -> (S, N)."""
    S, N, _ = x.shape
    out = np.full((S, N), np.nan)
    for i in range(S):
        for j in range(N):
            keep = (rho_out[i, j] >= window[0]) & (rho_out[i, j] <= window[1]) & (y[i, j] > 0)
            if keep.sum() >= 3:
                out[i, j] = loglog_slope(x[i, j, keep], y[i, j, keep])
    return out


def _worst(values: np.ndarray, target: float) -> float:
    """The value farthest from ``target`` (NaN if any is NaN, so a missing fit fails)."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0 or np.isnan(v).any():
        return math.nan
    return float(v[np.argmax(np.abs(v - target))])


def first_below(rho: np.ndarray, level: float) -> np.ndarray:
    """First layer index with rho < level along the last axis; -1 where it never happens."""
    below = rho < level
    idx = np.argmax(below, axis=-1)
    return np.where(below.any(-1), idx, -1)


# ----------------------------------------------------------------------------- checks
def cubic_law_checks(record: Record) -> list[Check]:
    cfg, sc, r = record.config, record.config.scan, load(record, "scan", Scan)
    x = r.input_residual
    out = []
    regime = (f"one layer, X = 1x^T + eps R0, eps in [{sc.epsilons[0]:.0e}, {sc.epsilons[-1]:.0e}], "
              f"fit where rho_out in [{FIT_WINDOW[0]:.0e}, {FIT_WINDOW[1]:.0e}]; n={sc.n_tokens}, d={sc.d_model}, "
              f"s in {sc.qk_scale}, {cfg.n_seeds} seeds; worst slope shown")
    linear = "a linear contraction res(out) = c res(in) (exponential collapse)"
    lo, hi = SLOPE_BAND
    for key, label in (("sa", f"pure SA ({sc.n_heads} head)"), ("sa_multihead", f"pure SA ({sc.heads} heads)"),
                       ("sa_mlp", "SA followed by an MLP"), ("sa_ln", "SA followed by LayerNorm")):
        y = r.output_residual[key]
        slopes = fitted_slopes(x, y, y / r.output_norm[key], FIT_WINDOW)
        out.append(Check.within(f"cubic_law_{key}", f"{label}: res(out) = O(res(in)^3)", lo, hi,
                                _worst(slopes, theory.CUBIC_EXPONENT), regime=regime,
                                predicted=f"{theory.CUBIC_EXPONENT:g} (in [{lo}, {hi}])",
                                alternative=linear, alternative_predicted=theory.SKIP_EXPONENT))
    skip_regime = regime.replace(f"[{FIT_WINDOW[0]:.0e}, {FIT_WINDOW[1]:.0e}]", f">= {FIT_WINDOW[0]:.0e}")
    y = r.output_residual["sa_skip"]
    slopes = fitted_slopes(x, y, y / r.output_norm["sa_skip"], (FIT_WINDOW[0], np.inf))
    cubic = "the skip changes nothing: res(out) = O(res(in)^3)"
    out.append(Check.within("linear_law_skip", "SA + skip: the length-0 path keeps res(out) = res(in) + O(res^3)",
                            0.98, 1.02, _worst(slopes, theory.SKIP_EXPONENT), regime=skip_regime,
                            predicted="1 (in [0.98, 1.02])", alternative=cubic,
                            alternative_predicted=theory.CUBIC_EXPONENT))
    full = theory.SKIP_EXPONENT if sc.skip else theory.CUBIC_EXPONENT
    y = r.output_residual["full"]
    window = (FIT_WINDOW[0], np.inf) if sc.skip else FIT_WINDOW
    slopes = fitted_slopes(x, y, y / r.output_norm["full"], window)
    flo, fhi = (0.98, 1.02) if sc.skip else SLOPE_BAND
    out.append(Check.within("full_model_law", f"one full layer (skip={sc.skip}, mlp={sc.mlp}, norm={sc.norm}): "
                            f"slope {full:g}", flo, fhi, _worst(slopes, full),
                            regime=skip_regime if sc.skip else regime, predicted=f"{full:g} (in [{flo}, {fhi}])",
                            alternative=cubic if sc.skip else linear,
                            alternative_predicted=theory.CUBIC_EXPONENT if sc.skip else theory.SKIP_EXPONENT))
    two = r.two_layer
    slopes = fitted_slopes(two.input_residual, two.output_residual, two.output_residual / two.output_norm, FIT_WINDOW)
    out.append(Check.within("cubic_law_two_layers", "two composed SA layers: res(out) = O(res(in)^9)", 8.0, 10.5,
                            _worst(slopes, theory.two_layer_exponent(2)),
                            regime=(f"eps in [{sc.epsilons_two_layer[0]:.0e}, {sc.epsilons_two_layer[-1]:.0e}], fit where "
                                    f"rho_out in [{FIT_WINDOW[0]:.0e}, {FIT_WINDOW[1]:.0e}]; s in {sc.qk_scale}"),
                            predicted="9 (in [8, 10.5])", alternative="the exponents add over layers (3 + 3)",
                            alternative_predicted=2 * theory.CUBIC_EXPONENT))
    return out


def doubly_exponential_checks(record: Record) -> list[Check]:
    """The cubic law through depth, in extended precision: log rho_{l+1} = 3 log rho_l + log c_l.

    Fitted per network as the least-squares slope of log rho_{l+1} against log rho_l over the layer
    pairs whose output lies below 1e-5 (the cubic regime, as ``FIT_WINDOW``) and above the working
    precision's floor; c_l (the layer's constant) goes into the intercept.  An exponential decay
    at any rate k has log rho_{l+1} = log rho_l + log k, slope exactly 1."""
    pc, p = record.config.precision, load(record, "precision", Precision)
    floor = -(pc.digits - PRECISION_MARGIN)
    x, y = p.log10_rho[:, :-1], p.log10_rho[:, 1:]  # (R, L)
    keep = (y <= math.log10(FIT_WINDOW[1])) & (y >= floor)
    slopes = np.array([np.polyfit(x[i, k], y[i, k], 1)[0] if k.sum() >= 3 else math.nan for i, k in enumerate(keep)])
    last = np.array([y[i, k][-1] / x[i, k][-1] if k.any() else math.nan for i, k in enumerate(keep)])
    float_ok = p.rho_float64 >= 1e-8  # where float64 still resolves rho to 8 digits
    gap = np.abs(np.log10(np.where(float_ok, p.rho_float64, 1.0)) - np.where(float_ok, p.log10_rho, 0.0))
    # the growth rate of -log rho through depth: log10(-log10 rho_l) against l, on the same layers;
    # the rival is exponential decay from the same start to the same deepest fitted point,
    # log10 rho_l = log10 rho_0 - k l, whose -log rho grows linearly (log10(-log10 rho_l) ~ log10 l)
    growth, rival = np.full(len(keep), math.nan), np.full(len(keep), math.nan)
    for i, k in enumerate(keep):
        layers = np.arange(1, p.log10_rho.shape[1])[k]  # the layers l + 1 whose rho is in the window
        if layers.size >= 3:
            depth_rho = p.log10_rho[i, layers]
            growth[i] = np.polyfit(layers, np.log10(-depth_rho), 1)[0]
            start = p.log10_rho[i, 0]
            exponential = start - (start - depth_rho[-1]) * layers / layers[-1]
            rival[i] = np.polyfit(layers, np.log10(-exponential), 1)[0] if (exponential < 0).all() else 0.0
    glo, ghi = GROWTH_BAND
    lo, hi = SLOPE_BAND
    regime = (f"pure SAN, n={pc.n_tokens}, d={pc.d_model}, one head, s={pc.qk_scale:g}, sigma_v={pc.value_scale:g}, "
              f"L={pc.depth}, {pc.runs} networks in {pc.digits}-digit arithmetic (mpmath); pairs with rho_(l+1) in "
              f"[1e-{pc.digits - PRECISION_MARGIN}, 1e-5]: {int(keep.sum(1).min())}-{int(keep.sum(1).max())} per network; "
              f"deepest log10 rho_L {p.log10_rho[:, -1].max():.0f} .. {p.log10_rho[:, -1].min():.0f}; last step "
              f"log rho_(l+1) / log rho_l in [{np.nanmin(last):.4f}, {np.nanmax(last):.4f}]; worst slope shown")
    return [
        Check.within("doubly_exponential_collapse",
                     "pure SAN through depth: log rho_(l+1) = 3 log rho_l + O(1), so rho_L ~ rho_0^(3^L) (doubly exponential)",
                     lo, hi, _worst(slopes, theory.CUBIC_EXPONENT), predicted=f"3 (in [{lo}, {hi}])", regime=regime,
                     alternative="exponential decay at any rate: log rho_(l+1) = log rho_l + log k",
                     alternative_predicted=theory.SKIP_EXPONENT),
        Check.within("doubly_exponential_growth",
                     "pure SAN through depth: -log rho_l grows by a factor 3 per layer, "
                     "slope of log10(-log10 rho_l) in l = log10 3",
                     glo, ghi, _worst(growth, math.log10(3.0)), predicted=f"log10 3 = {math.log10(3):.4f} "
                     f"(in [log10 2.8, log10 3.2] = [{glo:.3f}, {ghi:.3f}])",
                     regime=regime.replace("worst slope shown", "worst growth slope shown"),
                     alternative="exponential decay rho_l = rho_0 q^l through the same deepest point: "
                                 "log10(-log10 rho_l) = log10(k l - log10 rho_0), slope ~ 1/(l ln 10) -> 0 "
                                 "(largest over networks shown)",
                     alternative_predicted=float(np.nanmax(rival)) if np.isfinite(rival).any() else math.nan),
        Check.at_most("extended_precision_matches_float64",
                      "the extended-precision SAN reproduces transformer_forward in float64 wherever float64 resolves rho",
                      1e-6, float(gap.max()), predicted="0 (|log10 rho_mp - log10 rho_f64| <= 1e-6 where rho_f64 >= 1e-8)",
                      regime=f"the same {pc.runs} networks, {int(float_ok.sum())} (network, layer) entries",
                      kind="numerics"),
    ]


def bound_check(record: Record) -> list[Check]:
    bc, b = record.config.bound, load(record, "bound", Bound)
    ratio = b.measured / theory.explicit_bound(b.n, b.max_logit_deviation, b.residual_norm, b.value_norm)
    tight = (b.n == 2) & (b.d == 1)
    worst = float(np.max(ratio))
    tight_max = float(np.max(ratio[tight])) if tight.any() else math.nan
    slack = 1.0 / theory.EXPLICIT_BOUND_TIGHT
    return [
        Check.at_most(
            "explicit_bound", "||res(SA(X))||_{1,inf} <= 2(1-1/n) sqrt(n) (e^{2 eps_E} - 1) ||R||_{1,inf} ||W||_{1,inf}",
            1.0, worst, predicted="measured / bound <= 1",
            regime=(f"{len(ratio)} random single-head layers: n in {bc.tokens}, d in {bc.widths}, "
                    f"s, sigma_v log-uniform in [1/4, 4], input residual in [1e-3, 1]; median ratio {np.median(ratio):.1e}; "
                    f"the largest ratios come from n = 2, d = 1, where the slack is {slack:.3g}"),
            alternative=f"a bound 3x smaller (a constant off by more than the slack {slack:.3g})",
            alternative_predicted=3.0 * worst),
        Check.close(
            "explicit_bound_tight", "at n = 2, d = 1 the bound is attained up to 2 sqrt 2 as the residual vanishes: "
            "max measured / bound = 1/(2 sqrt 2)", theory.EXPLICIT_BOUND_TIGHT, tight_max, rtol=1e-3,
            regime=f"the {int(tight.sum())} trials with n = 2, d = 1 (input residual in [1e-3, 1])",
            alternative="the one-sided softmax estimate e^{eps_E} - 1 in place of e^{2 eps_E} - 1 (a bound half as large)",
            alternative_predicted=2.0 * theory.EXPLICIT_BOUND_TIGHT,
        ).only_if(bool(tight.any()), "no trials with n = 2, d = 1"),
    ]


def composed_bounds(record: Record) -> dict[str, dict[str, np.ndarray]]:
    """Per head count 'h<H>': the measured log10 r_l, the composed bound log10 B_l, its quartic rival
    (B_(l+1) = c_l B_l^4), the paper-form bound with c = max_l c_l, the one-step bound
    log10 c_l(r_l) r_l^3 from the measured r_l and its quartic rival, each (R, E, L+1) (the one-step
    ones NaN at l = 0), and ``resolved`` (R, E, L+1): layers >= 1 above the working precision's floor."""
    cc, c = record.config.composed, load(record, "composed", Composed)
    floor = -(cc.digits - PRECISION_MARGIN)
    out = {}
    for key, lr in c.log10_residual.items():
        norms = [c.qk_norm[key][:, None], c.value_norm_1[key][:, None], c.value_norm_inf[key][:, None]]  # (R, 1, L, H)
        logB, logc = theory.composed_bound_log10(lr[..., 0], cc.n_tokens, *norms)
        logB4, _ = theory.composed_bound_log10(lr[..., 0], cc.n_tokens, *norms, power=4.0)
        step_c = np.stack([theory.layer_constant_log10(lr[..., l], cc.n_tokens, *(v[..., l, :] for v in norms))
                           for l in range(cc.depth)], -1)  # (R, E, L): c_l at the measured r_l
        nan = np.full(lr.shape[:-1] + (1,), np.nan)
        resolved = (c.log10_rho[key] > floor) & (np.arange(cc.depth + 1) >= 1)
        out[key] = {"measured": lr, "composed": logB, "quartic": logB4,
                    "paper": theory.paper_form_log10(lr[..., 0], logc.max(-1), cc.depth),
                    "step": np.concatenate([nan, step_c + 3.0 * lr[..., :-1]], -1),
                    "step_quartic": np.concatenate([nan, step_c + 4.0 * lr[..., :-1]], -1),
                    "constant": logc, "resolved": resolved}
    return out


def composed_bound_checks(record: Record) -> list[Check]:
    """The one-layer bound composed over depth (the form of Dong et al.'s Thm 2.2/2.3 with our constants):
    r_(l+1) <= c_l(r_l) r_l^3 layer by layer, and r_L <= B_L = prod_l c_l(B_l)^(3^(L-1-l)) r_0^(3^L)
    from the input alone.  Both are theorems here (chapter): a single violation is a bug.  Measured in
    log10 (the ratios reach 10^-500); the rival is a contraction one power faster (r^4, exponents
    4^(L-l)), which the measured residuals must break."""
    cc = record.config.composed
    b = composed_bounds(record)

    def worst(top: str, bottom: str) -> float:
        gaps = [(v[top] - v[bottom])[v["resolved"]] for v in b.values()]
        return float(np.max(np.concatenate(gaps)))

    resolved = sum(int(v["resolved"].sum()) for v in b.values())
    powers = 3.0 ** np.arange(cc.depth - 1, -1, -1)  # 3^(L-1-l), l = 0..L-1
    unrolled_gap = max(float(np.max(np.abs(v["composed"][..., -1] - (v["constant"] @ powers + 3.0 ** cc.depth
                                                                     * v["measured"][..., 0]))
                                    / np.abs(v["composed"][..., -1]))) for v in b.values())

    def deepest(v, a):  # a (R, E, L+1) at each (network, eps)'s deepest resolved layer, (R * E,)
        last = (v["resolved"] * np.arange(cc.depth + 1)).argmax(-1)  # (R, E)
        return np.take_along_axis(a, last[..., None], -1).ravel()

    slack = np.concatenate([deepest(v, v["composed"] - v["measured"]) for v in b.values()])
    exponent = np.concatenate([deepest(v, v["measured"] / v["composed"]) for v in b.values()])
    layers = np.concatenate([deepest(v, np.broadcast_to(np.arange(cc.depth + 1), v["measured"].shape))
                             for v in b.values()])
    c_bound = np.concatenate([v["constant"].ravel() for v in b.values()])
    c_meas = np.concatenate([(v["measured"][..., 1:] - 3 * v["measured"][..., :-1])[v["resolved"][..., 1:]]
                             for v in b.values()])
    regime = (f"pure SAN, H in {cc.heads}, n={cc.n_tokens}, d={cc.d_model}, s={cc.qk_scale:g}, "
              f"sigma_v={cc.value_scale:g}, L={cc.depth}, {cc.runs} networks per H, X = 1x^T + eps R0 with "
              f"||res(X)||_(1,inf) = eps in {cc.epsilons}, {cc.digits}-digit arithmetic; {resolved} (network, eps, layer) "
              f"entries above the working precision's floor")
    return [
        Check.at_most(
            "layerwise_bound", "every pure attention layer obeys ||res(SA(X))||_(1,inf) <= c_l(r) r^3, "
            "r = ||res(X)||_(1,inf), with c_l computed from the layer's weights (max log10 measured / bound shown)",
            0.0, worst("measured", "step"), predicted="log10(measured / bound) <= 0", regime=regime,
            alternative="a quartic layer map c_l(r) r^4 (a contraction one power faster than cubic)",
            alternative_predicted=worst("measured", "step_quartic")),
        Check.at_most(
            "composed_bound", "composed over depth: ||res(SAN_l(X))||_(1,inf) <= prod_(m<l) c_m(B_m)^(3^(l-1-m)) "
            "r_0^(3^l) at every layer l, from the input residual r_0 and the weights alone "
            "(max log10 measured / bound shown)",
            0.0, worst("measured", "composed"), predicted="log10(measured / bound) <= 0",
            regime=f"{regime}; the paper-form bound c^((3^l-1)/2) r_0^(3^l) with c = max_l c_l is looser still "
                   f"(max log10 measured / bound {worst('measured', 'paper'):.2f})",
            alternative="the same composition with exponents 4^(l-m) (B_(m+1) = c_m B_m^4)",
            alternative_predicted=worst("measured", "quartic")),
        Check.at_most(
            "composed_bound_exponents", "the composed bound unrolled is Thm 2.2's exponent structure: "
            "log B_L = sum_l 3^(L-1-l) log c_l + 3^L log r_0 (max relative difference shown)",
            1e-12, unrolled_gap, predicted="0 (float64: <= 1e-12 relative)", kind="identity",
            regime=f"every network and eps of the composed runs, L = {cc.depth}; with c = max_l c_l the sum of "
                   f"exponents is (3^L - 1)/2 = {(3 ** cc.depth - 1) // 2}"),
        Check.at_least(
            "composed_bound_slack", "how loose the composed bound is at the deepest resolved layer: "
            "decades log10 B_L - log10 r_L (median shown)", 0.0, float(np.median(slack)), kind="observation",
            regime=(f"{regime}; slack {slack.min():.0f} .. {slack.max():.0f} decades at the deepest resolved layer "
                    f"({int(layers.min())}-{int(layers.max())}), "
                    f"log r_L / log B_L = {exponent.min():.2f} .. {exponent.max():.2f}; per-layer constants: "
                    f"the bound's log10 c_l = {np.median(c_bound):.2f} (median), the measured "
                    f"log10 (r_(l+1) / r_l^3) = {np.median(c_meas):.2f}; the slack of each constant is "
                    "multiplied by 3^(L-1-l) in the exponent")),
    ]


def residual_definition_check(record: Record) -> list[Check]:
    cfg, sw = record.config, load(record, "sweep", Sweep)
    mean = np.concatenate([sw.rho[k][..., sw.argmin_layers].ravel() for k in ("san", "full")])
    argmin = np.concatenate([sw.rho_argmin[k].ravel() for k in ("san", "full")])
    above_floor = mean >= 1e-10  # at the rounding floor both residuals are noise (the argmin one can be exactly 0)
    ratios = mean[above_floor] / argmin[above_floor]
    low, high = 1.0, theory.centring_norm(cfg.n_tokens)
    # an identity: the approximate argmin starts from the better of the median and the mean and only
    # improves (so ratio >= 1), and ||(I-J)X|| <= ||I-J|| ||X - 1x^T|| for every x (so ratio <= 2(1-1/n))
    return [Check.within("residual_definitions", "res_argmin <= res_mean <= 2(1-1/n) res_argmin in the composite norm",
                         low * (1 - 1e-12), high,
                         (float(ratios.max()) if ratios.min() >= low * (1 - 1e-12) else float(ratios.min())) if ratios.size else math.nan,
                         predicted=f"ratio in [1, {high:.4g}]", kind="identity",
                         regime=(f"SAN and full-model hidden states at layers {[int(l) for l in sw.argmin_layers]}, "
                                 f"s in {cfg.qk_scale}, {cfg.n_seeds} seeds, {above_floor.sum()} states with rho_mean >= 1e-10; "
                                 f"argmin by norms.residual_argmin (min ratio {ratios.min():.4g})"))]


def collapse_checks(record: Record) -> list[Check]:
    cfg, sw = record.config, load(record, "sweep", Sweep)
    low = np.asarray(cfg.qk_scale, dtype=float) <= 1.0
    rho = np.stack([sw.rho["san"], sw.rho["san_mlp"]])  # (2, S, N, L+1)
    at8 = rho[:, low, :, COLLAPSE_LAYER]
    start, end = first_below(rho, 1e-2), first_below(rho, 1e-12)
    started = start >= 0
    gap = np.where(end >= 0, end - start, np.inf)[started]
    n_started, n_total = int(started.sum()), started.size
    plateau = start[:, ~low][start[:, ~low] >= 0]
    return [
        Check.at_most("collapse_to_floor", f"SAN and SAN+MLP reach the float64 floor by layer {COLLAPSE_LAYER}",
                      1e-10, float(at8.max()) if at8.size else math.nan,
                      regime=f"s <= 1 of {cfg.qk_scale}, {cfg.n_seeds} seeds, n={cfg.n_tokens}, d={cfg.d_model}, H={cfg.n_heads}",
                      alternative="no collapse: rho_8 = rho_0 (rank kept)",
                      alternative_predicted=float(rho[:, low, :, 0].max()) if at8.size else math.nan),
        # float64 sees at most two cubic steps before its floor, so this passes for any exponential decay of
        # >= 3.4 decades per layer too: a spec threshold, not a test of the law (doubly_exponential_collapse is)
        Check.at_most("collapse_gap_float64",
                      "once rho < 1e-2, at most 3 more layers reach rho < 1e-12 (spec threshold)",
                      3, float(gap.max()) if gap.size else math.nan, kind="observation",
                      regime=(f"SAN and SAN+MLP in float64, all s in {cfg.qk_scale}; {n_started}/{n_total} runs reached 1e-2 "
                              f"within {cfg.depth} layers; latest onset at s > 1: layer "
                              f"{int(plateau.max()) if plateau.size else 'none'}; an exponential decay of >= 3.4 "
                              "decades per layer passes too")),
    ]


def skip_checks(record: Record) -> list[Check]:
    """Skips at random weights (Fig. 2's regime, alpha = sigma_v = 1): the length-0 path stops the
    doubly exponential collapse (Sec. 3.1's path argument), but the token mean still outgrows the
    frozen residual, so rho decays exponentially at the mean's Lyapunov rate.  (Claim 3.1's own
    statement, that some weights keep the residual exactly, is `uniform_witness`.)"""
    cfg, sw = record.config, load(record, "sweep", Sweep)
    layer = min(SKIP_LAYER, cfg.depth)
    low = np.asarray(cfg.qk_scale, dtype=float) <= 1.0
    skip, san, full = (sw.rho[k][:, :, layer] for k in ("san_skip", "san", "full"))
    ratio = skip[low] / np.maximum(san[low], np.finfo(float).tiny)
    alpha = f"alpha={cfg.alpha:.3g}, sigma_v={cfg.value_scale:g}"
    L, half = cfg.depth, cfg.depth // 2
    log_rho = np.log10(sw.rho_fro["san_skip"][low])  # (S_low, N, L+1)
    per_seed = ((log_rho[..., L] - log_rho[..., half]) / (L - half)).mean(0)  # the scales share a seed's W_V W_O
    rate, se = float(per_seed.mean()), float(per_seed.std(ddof=1) / math.sqrt(per_seed.size)) if per_seed.size > 1 else math.nan
    predicted = theory.skip_decay_rate(cfg.d_model, cfg.alpha, cfg.value_scale)
    expectation = -0.5 * math.log10(1 + cfg.alpha ** 2 * cfg.value_scale ** 2)  # Noci's law: log E, not E log
    checks = [
        Check.at_least("skip_vs_san", f"rho_{layer}(SAN+skip) >= 1e6 rho_{layer}(SAN) with the same weights and inputs "
                       "(the length-0 path stops the doubly exponential collapse)",
                       1e6, float(ratio.min()) if ratio.size else math.nan,
                       regime=(f"{alpha}, s <= 1 (at larger s the SAN plateau can outlast layer {layer}), {cfg.n_seeds} seeds; "
                               f"min rho_{layer}(SAN+skip) {skip.min():.2g}"),
                       alternative="skips do not change the collapse: ratio 1", alternative_predicted=1.0),
        Check.close("skip_decay_rate", f"SAN+skip still loses rank, exponentially: over layers {half}-{L}, "
                    "d log10 rho_F / dl = -lambda / (2 ln 10), lambda = E log||e_1 (I + alpha W)||^2 the Lyapunov "
                    "exponent of the token mean", predicted, rate, atol=SKIP_Z * se,
                    regime=(f"{alpha}, s <= 1 of {cfg.qk_scale}, {per_seed.size} seeds (SE {se:.2g}, tolerance "
                            f"{SKIP_Z:g} SE); the expectation law's rate {expectation:.4f} is "
                            f"{abs(rate - expectation) / se:.1f} SE away; median rho_{L}(SAN+skip) "
                            f"{np.median(sw.rho['san_skip'][..., L]):.1e}"),
                    alternative="skips keep the rank (no decay)", alternative_predicted=0.0,
                    ).only_if(L >= 24 and bool(low.any()) and cfg.alpha * cfg.value_scale >= 1,
                              "the mean outgrows the residual only after ~12 layers at alpha sigma_v >= 1"),
    ]
    if cfg.skip:
        checks.append(Check.at_least("full_model_keeps_rank", f"the full model (skip, mlp={cfg.mlp}, norm={cfg.norm}) "
                                     f"keeps rho_{layer} >= 1e-3 (spec threshold)", 1e-3, float(full.min()), kind="observation",
                                     regime=(f"{alpha}, s in {cfg.qk_scale}, {cfg.n_seeds} seeds; no theorem bounds it at "
                                             f"random weights, and it decays exponentially too: median rho_{L} "
                                             f"{np.median(sw.rho['full'][..., L]):.1e}")))
    else:
        rho_full = sw.rho["full"][low]
        checks.append(Check.at_most("full_model_collapses", f"without skips the full model (mlp={cfg.mlp}, norm={cfg.norm}) "
                                    f"collapses: rho_{COLLAPSE_LAYER} <= 1e-10", 1e-10,
                                    float(rho_full[:, :, COLLAPSE_LAYER].max()),
                                    regime=f"s <= 1 of {cfg.qk_scale}, {cfg.n_seeds} seeds",
                                    alternative="no collapse: rho_8 = rho_0 (rank kept)",
                                    alternative_predicted=float(rho_full[:, :, 0].max())))
    return checks


def band_margin(ratio: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """min over entries of min(ratio / lower, upper / ratio): >= 1 iff every ratio lies in its band
    (entries whose lower end is 0 test only the upper end)."""
    low = np.where(lower > 0, ratio / np.where(lower > 0, lower, 1.0), np.inf)
    return float(np.minimum(low, upper / ratio).min())


def regime_checks(record: Record) -> list[Check]:
    """Where skips keep the residual (the (alpha, sigma_v, s) map of SAN+skip, no MLP or LayerNorm)."""
    cfg, rc, r = record.config, record.config.regime, load(record, "regime", Regime)
    lower, upper = theory.residual_band(r.contraction)
    ratio = r.residual / r.residual[..., :1]
    san = r.san_residual / r.san_residual[..., :1]
    L = rc.depth
    a, v = np.meshgrid(np.asarray(rc.alphas), np.asarray(rc.value_scales), indexing="ij")  # (A, V)
    strength = (a * v) ** 2 * L  # alpha^2 sigma_v^2 L: Noci's exponent
    guaranteed = lower[..., -1] >= 0.5  # (A, V, S, N): the band keeps ||R_L|| >= ||R_0|| / 2
    rho_L = r.rho_fro[..., -1]  # (A, V, S, N)
    weak, strong = strength <= 1.0, strength >= 20.0
    grid = f"alpha in {rc.alphas}, sigma_v in {rc.value_scales}, s in {rc.qk_scales}, L={L}, n={rc.n_tokens}, d={rc.d_model}, {rc.seeds} seeds"
    return [
        Check.at_least(
            "skip_residual_band",
            "SAN+skip: prod(1 - k_l) <= ||res(X_L)||_F / ||res(X_0)||_F <= prod(1 + k_l), "
            "k_l = alpha ||(I-J) P_l (I-J)||_2 ||W_V W_O||_2, at every layer (composed over depth)",
            1.0 - 1e-12, band_margin(ratio[..., 1:], lower[..., 1:], upper[..., 1:]),
            predicted="band margin >= 1 (float64: >= 1 - 1e-12)",
            regime=(f"{grid}; every layer 1..L; the lower end stays >= 1/2 at L in {guaranteed.mean():.0%} of the "
                    f"(cell, seed) runs; median k_l {np.median(r.contraction):.2g}"),
            alternative="the skip does not stop the residual's collapse: ||res(X_L)|| / ||res(X_0)|| as in the pure SAN",
            alternative_predicted=band_margin(np.maximum(san[..., 1:], np.finfo(float).tiny), lower[..., 1:], upper[..., 1:])),
        Check.at_least(
            "skip_regime_kept", "SAN+skip keeps the relative residual where alpha^2 sigma_v^2 L <= 1 (Noci's exponent "
            "small): min rho_F,L over those cells and seeds (observed, no theorem at random QK)",
            0.1, float(rho_L[weak].min()) if weak.any() else math.nan, kind="observation",
            regime=(f"{grid}; {int(weak.sum())} of {weak.size} (alpha, sigma_v) cells have alpha^2 sigma_v^2 L <= 1; "
                    f"median rho_F,L where alpha^2 sigma_v^2 L >= 20: "
                    f"{np.median(rho_L[strong]) if strong.any() else math.nan:.2g}")),
    ]


def witness_checks(record: Record) -> list[Check]:
    cfg, w = record.config, load(record, "witness", Witness)
    rel = w.residual_drift / w.max_abs
    return [
        Check.at_most("uniform_witness", "W_Q = W_K = 0 with skips: res(X_L) = res(X_0) exactly (Claim 3.1 witness)",
                      1e-12, float(rel.max()), predicted="0 (float64: <= 1e-12 max|X_L|)", kind="identity",
                      regime=f"L={cfg.depth}, alpha={cfg.alpha:.3g}, sigma_v in {cfg.witness_value_scales}, {cfg.n_seeds} seeds; "
                             f"max|X_L| up to {w.max_abs.max():.1e}"),
        Check.at_most("uniform_san_one_layer", "the same uniform attention without skips is rank one after one layer",
                      1e-14, float(w.rho_san_layer1.max()), predicted="0 (float64: rho_1 <= 1e-14)", kind="identity",
                      regime=f"sigma_v in {cfg.witness_value_scales}, {cfg.n_seeds} seeds"),
    ]


def path_checks(record: Record) -> list[Check]:
    cfg, pc, p = record.config, record.config.paths, load(record, "paths", Paths)
    L, H = pc.depth, pc.heads
    expected = {"noskip": np.eye(L + 1, dtype=np.int64)[-1] * H ** L, "skip": theory.path_length_counts(L, H)}
    out = []
    for key, label, total in (("noskip", "without skips (Thm 2.1)", H ** L), ("skip", "with skips (Claim 3.1)", (H + 1) ** L)):
        out.append(Check.at_most(f"path_decomposition_{key}", f"the sum over all {total} paths equals the forward output {label}",
                                 1e-12, float(p.rel_error[key].max()), predicted="0 (float64: <= 1e-12 relative)",
                                 kind="identity",
                                 regime=f"H={H}, L={L}, n={pc.n_tokens}, d={pc.d_model}, {cfg.n_seeds} seeds"))
    deviation = max(int(np.abs(p.count[k].astype(np.int64) - expected[k]).max()) for k in expected)
    out.append(Check.holds("path_length_counts", "the enumerated paths of length k number binom(L,k) H^k (H^L without skips)",
                           deviation == 0, measured=deviation, predicted=f"{[int(c) for c in expected['skip']]}",
                           tolerance="exact (max |count - binom(L,k)H^k| = 0)", regime=f"H={H}, L={L}", kind="identity"))
    return out


def depth_scaling_checks(record: Record) -> list[Check]:
    cfg, sc = record.config, load(record, "scaling", Scaling)
    L = cfg.scaling_depths[-1]
    regime = (f"alpha = 1/sqrt({L}), s in {cfg.qk_scale}, {cfg.n_seeds} seeds, n={cfg.n_tokens}, d={cfg.d_model}; "
              "the bar stands for 'bounded away from 0'")
    alternative = "the branch scale does not matter: rho_L as at alpha = 1 (same weights)"
    out = []
    for key, name, label, bar in (("san_skip", "depth_scaling_skip", "SAN+skip", 0.5),
                                  ("full_skip", "depth_scaling_full", f"the full model (mlp={cfg.mlp}, norm={cfg.norm})", 0.3)):
        rho = sc.rho[f"{key}_invsqrt"][:, :, -1]
        at_one = sc.rho[f"{key}_alpha1"][:, :, L]  # the same networks and inputs with alpha = 1
        out.append(Check.at_least(name, f"with alpha = 1/sqrt(L), {label} keeps rho_{L} >= {bar:g}", bar,
                                  float(rho.min()), regime=regime, alternative=alternative,
                                  alternative_predicted=float(at_one.min())))
    return out


def gradient_checks(record: Record) -> list[Check]:
    cfg, gc, g = record.config, record.config.grad, load(record, "grad", Gradients)
    q, k, v = g.one["W_Q"], g.one["W_K"], g.one["W_V"]
    at_zero = np.maximum(q[..., 0], k[..., 0]) / v[..., 0]
    deep = {c: np.linalg.norm(g.deep_collapsed[f"W_{c}"], axis=-1) for c in "QKV"}
    deep_ratio = np.maximum(deep["Q"], deep["K"]) / deep["V"]
    positive = g.eps > 0
    slopes = np.array([[loglog_slope(g.eps[positive], w[i, j, positive]) for j in range(w.shape[1]) for i in range(w.shape[0])]
                       for w in (q, k)])
    return [
        Check.at_most("qk_gradient_vanishes", "at X = 1 x^T the loss gradient wrt W_Q and W_K is zero (W_V's is not)",
                      1e-12, float(max(at_zero.max(), deep_ratio.max())), predicted="0 (float64: |grad_QK| / |grad_V| <= 1e-12)",
                      kind="identity",
                      regime=(f"one SA layer and the full model (depth {gc.depth}, skip={gc.skip}, mlp={gc.mlp}, "
                              f"norm={gc.norm}), loss <G, f(X)>, s in {gc.qk_scale}, {cfg.n_seeds} seeds")),
        Check.within("qk_gradient_order", "|grad W_Q|, |grad W_K| = O(eps^2) at X = 1 x^T + eps R0 (one SA layer)",
                     1.9, 2.1, _worst(slopes, theory.QK_GRADIENT_EXPONENT), predicted="2 (in [1.9, 2.1])",
                     alternative="first order in the perturbation: O(eps)", alternative_predicted=1.0,
                     regime=f"eps in [{g.eps[positive][0]:.0e}, {g.eps[-1]:.0e}], s in {gc.qk_scale}, {cfg.n_seeds} seeds; worst slope"),
    ]


def noci_checks(record: Record) -> list[Check]:
    nc, r = record.config.noci, load(record, "noci", Noci)
    ratios = r.mean_ratio[:, :, -1]  # (2, samples)
    out = []
    for i, (key, alpha) in enumerate(zip(("alpha1", "invsqrt"), r.alphas)):
        x = ratios[i]
        mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
        pred = float(theory.noci_mean_growth(float(alpha), nc.value_scale, nc.depth))
        label = "1" if key == "alpha1" else f"1/sqrt({nc.depth})"
        out.append(Check.close(f"noci_mean_growth_{key}",
                               f"uniform attention + skips: E||m_L||^2/||m_0||^2 = (1 + alpha^2 sigma_v^2)^L at alpha = {label}",
                               pred, mean, atol=NOCI_Z * se,
                               alternative="the branches add variance without compounding: 1 + L alpha^2 sigma_v^2",
                               alternative_predicted=float(theory.noci_additive_growth(float(alpha), nc.value_scale, nc.depth)),
                               regime=(f"{x.size} Monte Carlo networks, L={nc.depth}, sigma_v={nc.value_scale}, "
                                       f"n={nc.n_tokens}, d={nc.d_model}; tolerance {NOCI_Z:g} standard errors (SE = {se / pred:.1%} of p)")))
    out.append(Check.at_most("noci_residual_frozen", "uniform attention + skips: R_{l+1} = R_l exactly (only the mean moves)",
                             1e-12, float(r.residual_drift.max()), predicted="0 (float64: <= 1e-12 max|X_L|)", kind="identity",
                             regime=f"the same {ratios.shape[1]} networks, both alphas"))
    return out


def cluster_checks(record: Record) -> list[Check]:
    cfg, cc, c = record.config, record.config.cluster, load(record, "cluster", Clustering)
    step = np.diff(c.energy, axis=-1) / c.energy[..., :-1]  # (B, N, steps)
    betas = np.asarray(cc.betas)
    small = betas <= 1.0
    final_cos = c.min_cosine[small, :, -1]
    return [
        Check.at_least("cluster_energy_monotone", "E_beta is nondecreasing along the sphere dynamics (SA)", -1e-12,
                       float(step.min()), predicted=">= 0 (float64: relative step >= -1e-12)",
                       no_alternative="a sign condition: any dynamics without this Lyapunov function shows negative steps, "
                                      "and no rival law predicts a value",
                       regime=(f"Euler h={cc.step} with renormalisation, n={cc.tokens}, d={cc.dim}, "
                               f"beta in {cc.betas}, T={cc.time:g}, {cfg.n_seeds} seeds")),
        Check.at_least("single_cluster_small_beta", f"for beta <= 1 all tokens merge into one cluster by t = {cc.time:g}",
                       0.999, float(final_cos.min()) if final_cos.size else math.nan, predicted="min cosine >= 0.999",
                       alternative="no clustering: the tokens stay as spread as at t = 0",
                       alternative_predicted=float(c.min_cosine[small, :, 0].min()) if final_cos.size else math.nan,
                       regime=f"beta in {tuple(betas[small])}, n={cc.tokens}, d={cc.dim}, {cfg.n_seeds} seeds"),
    ]


def toy_check(record: Record) -> list[Check]:
    tc, t = record.config.toy, load(record, "toy", TwoToken)
    T, K = np.meshgrid(t.theta, t.kappa, indexing="ij")
    worst = 0.0
    for key, skip in (("noskip", False), ("skip", True)):
        sim = t.states[key]
        rec = theory.two_token_recursion(np.cos(T), np.sin(T), K, tc.depth, skip)
        worst = max(worst, float((np.abs(sim - rec).max(-1) / np.abs(sim).max(-1)).max()))
    return [Check.at_most("two_token_recursion", "the scalar two-token recursion reproduces the general forward pass",
                          1e-10, worst, predicted="0 (float64: <= 1e-10 relative per layer)", kind="identity",
                          regime=f"{tc.grid}x{tc.grid} grid of (theta, kappa), L={tc.depth}, with and without skip")]


def _short_fraction(full: np.ndarray, short: np.ndarray, none: np.ndarray) -> np.ndarray:
    """(short - none) / (full - none) per seed: the share of the attention's gain kept by the short paths."""
    gain = full - none
    return np.where(np.abs(gain) > 0, (short - none) / np.where(np.abs(gain) > 0, gain, 1.0), np.nan)


TRAINED_MIN_STEPS = 100
"""The fewest full-batch Adam steps at which the trained-model claims are asserted (quick trains 150)."""


def trained_checks(record: Record) -> list[Check]:
    """The trained variants (Dong et al. Sec. 4): pure attention collapses, skips keep rank; and SAN+skip's
    output restricted to short paths (Sec. 4.3)."""
    cfg, tc = record.config, record.config.trained
    t = load(record, "trained", Trained)
    L, H = tc.depth, tc.n_heads
    # The claims are about trained models: below TRAINED_MIN_STEPS (smoke's 20 steps) the weights have
    # hardly left their initialisation, so the checks are shown, not asserted.
    trained, untrained = tc.steps >= TRAINED_MIN_STEPS, f"fewer than {TRAINED_MIN_STEPS} Adam steps: not yet trained"
    out = []
    for task in tc.tasks:
        san = t.rho[f"{task}_san"]  # (N, L+1)
        skips = np.stack([t.rho[f"{task}_san_skip"][:, -1], t.rho[f"{task}_full"][:, -1]])
        size = (f"{task} task, L={L}, H={H}, d={tc.d_model}, {tc.seeds} seeds, {tc.steps} full-batch Adam steps at "
                f"lr {tc.lr:g}; rho averaged over the evaluation samples")
        out.append(Check.at_most(
            f"trained_san_collapses_{task}",
            f"trained pure attention loses rank: rho_{L} of the trained SAN <= {TRAINED_COLLAPSE_BAR:g}",
            TRAINED_COLLAPSE_BAR, float(san[:, -1].max()), regime=size + "; largest over seeds shown",
            predicted=f"<= {TRAINED_COLLAPSE_BAR:g} (Fig. 2's resolution)",
            alternative="no collapse: the trained attention keeps the residual it is fed, rho_L = rho_0 "
                        "(smallest rho_0 over seeds shown)",
            alternative_predicted=float(san[:, 0].min())).only_if(trained, untrained))
        out.append(Check.at_least(
            f"trained_skip_keeps_rank_{task}",
            f"trained SAN+skip and the full model (post-LN) keep rho_{L} >= {TRAINED_COLLAPSE_BAR:g} "
            "(the length-0 path of Claim 3.1)",
            TRAINED_COLLAPSE_BAR, float(skips.min()), regime=size + "; smallest over seeds and both variants shown",
            alternative="the skip does not stop collapse: rho_L as the trained SAN's (the same task, training and "
                        "initial weights without the skip; largest over seeds shown)",
            alternative_predicted=float(san[:, -1].max())).only_if(trained, untrained))
        if out[-1].discriminates is False:
            # the rival is "as the trained SAN": where that SAN does not collapse either (sorting), the
            # measurement cannot tell the two apart, so the check is reported, not counted (the rule of
            # the study's other non-discriminating claims)
            out[-1] = _replace(out[-1].as_kind("observation"), regime=(
                f"{out[-1].regime}; does not discriminate on this task: the trained SAN keeps rank too "
                f"(trained_san_collapses_{task}), so the rival passes as well"))
        if task in t.path_loss:
            share = float(theory.path_length_counts(L, H)[:SHORT_PATHS + 1].sum() / (H + 1) ** L)
            if task == "sort":
                acc = t.path_accuracy[task]  # (N, L+1), column l: paths of length <= l
                frac, what = _short_fraction(acc[:, -1], acc[:, SHORT_PATHS], acc[:, 0]), "accuracy"
            else:
                loss = t.path_loss[task]
                frac, what = _short_fraction(loss[:, -1], loss[:, SHORT_PATHS], loss[:, 0]), "loss"
            out.append(Check.at_least(
                f"short_paths_carry_{task}",
                f"trained SAN+skip: paths of length <= {SHORT_PATHS} recover >= {SHORT_PATH_FRACTION:g} of the "
                f"{what} gain of all paths over the length-0 path",
                SHORT_PATH_FRACTION, float(np.min(frac)) if np.isfinite(frac).all() else math.nan,
                regime=(size + f"; ({what}_<=2 - {what}_0) / ({what}_all - {what}_0) on the evaluation set, smallest over "
                        f"seeds; per seed {np.array2string(frac, precision=3)}"),
                alternative=(f"long paths matter: every path carries as much, so the paths of length <= {SHORT_PATHS} "
                             f"recover their share of the path count, sum_(k<={SHORT_PATHS}) C(L,k) H^k / (H+1)^L"),
                alternative_predicted=share).only_if(trained, untrained))
            out.append(Check.at_most(
                f"trained_path_decomposition_{task}",
                "the length groups of the path sum add up to the trained SAN+skip's forward output",
                1e-10, float(t.path_error[task].max()), predicted="0 (float64: <= 1e-10 relative)", kind="identity",
                regime=f"{task} task, evaluation inputs, {tc.seeds} seeds, L={L}, H={H}"))
    return [c.contradicted(NEGATIVE_RESULTS[c.name]) if c.name in NEGATIVE_RESULTS else c for c in out]


def checks(record: Record) -> list[Check]:
    """Every check of the study, recomputed from the record's arrays."""
    return [*cubic_law_checks(record), *doubly_exponential_checks(record), *bound_check(record), *composed_bound_checks(record),
            *residual_definition_check(record), *collapse_checks(record), *skip_checks(record),
            *witness_checks(record), *path_checks(record), *depth_scaling_checks(record), *gradient_checks(record),
            *noci_checks(record), *regime_checks(record), *trained_checks(record), *cluster_checks(record), *toy_check(record)]
