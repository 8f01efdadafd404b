"""``workbench bench``: measure, in one process and as ratios, what batching buys.

For every study that exposes ``bench_case(members, device) -> KernelCase`` (its training kernel:
the part of ``run`` that trains or evaluates an ensemble; a study with several kernels also
exposes ``bench_cases`` returning all of them), we time

- the ensemble of M members as one batched tensor program, against
- the same M members one at a time in a Python loop (same steps, same data),

check that member i of the batched run equals standalone run i to a float64 tolerance, and print
the speed-up.  We also time each study's ``quick`` preset (wall time and peak resident memory, in
a fresh subprocess so caches and allocations do not leak between studies) and, with
``--reproduce``, the whole ``workbench reproduce``.  Timings are never asserted in tests: these
machines are noisy; tests assert only that the ensemble equals the loop.

On a GPU the batched kernels also report achieved FLOP/s against the card's float64 peak, from
the study's FLOP estimate (``KernelCase.flops``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

# Targets stated in the performance issue (#7).
TARGET_SPEEDUP_CPU = 20.0      # ensemble vs loop at M = 512 on 2 CPU cores
TARGET_SPEEDUP_GPU = 100.0     # ... on one H100
TARGET_REPRODUCE_S = 15 * 60   # all five studies at quick + the book, 2 cores
FLOAT64_PEAK = {"H100": 67e12, "H200": 67e12, "A100": 19.5e12}  # dense float64 tensor-core FLOP/s


@dataclass
class KernelCase:
    """One study's training kernel at ensemble size ``members``."""

    name: str
    run_batched: Callable[[], dict[str, Tensor]]
    """Runs all members at once; returns outputs whose first axis is the member."""
    run_single: Callable[[int], dict[str, Tensor]]
    """Runs member i alone; returns the same outputs with a leading axis of size 1."""
    flops: float | None = None
    """Floating-point operations of one batched call (for FLOP/s on a GPU), if known."""
    rtol: float = 1e-10
    atol: float = 1e-12


@dataclass
class KernelTiming:
    study: str
    kernel: str
    members: int
    batched_s: float
    loop_s: float
    max_rel_diff: float
    equal: bool
    flops_per_s: float | None = None
    loop_members: int | None = None
    """How many members the loop actually ran; ``loop_s`` is scaled up from them to all
    ``members`` when fewer (see `time_kernel`).  ``None``: all of them."""

    @property
    def speedup(self) -> float:
        return self.loop_s / self.batched_s if self.batched_s > 0 else float("inf")


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_kernel(study: str, case: KernelCase, members: int, device: str, repeats: int = 1,
                loop_members: int | None = None) -> KernelTiming:
    """Best-of-``repeats`` wall time of the batched call and of the Python loop over members.

    ``loop_members = K < members`` runs the loop over K members spread evenly over the ensemble
    and scales its time by ``members / K`` (every member does the same work, so the loop's time is
    linear in the members it runs); the equality check then covers those K members.  For a GPU,
    where the loop is launch-bound and a full loop of 512 members can take many minutes.
    """
    case.run_batched()  # warm-up (allocations, lazy init)
    _sync(device)
    batched_s = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        batched = case.run_batched()
        _sync(device)
        batched_s = min(batched_s, time.perf_counter() - start)
    sampled = loop_members is not None and loop_members < members
    idx = sorted({round(j * (members - 1) / max(loop_members - 1, 1)) for j in range(loop_members)}) \
        if sampled else list(range(members))
    case.run_single(idx[0])  # warm-up of the single-member shapes, as for the batched call
    _sync(device)
    start = time.perf_counter()
    singles = [case.run_single(i) for i in idx]
    _sync(device)
    loop_s = (time.perf_counter() - start) * members / len(idx)
    worst, equal = 0.0, True
    for name, full in batched.items():
        full = full[idx] if sampled else full
        alone = torch.cat([s[name] for s in singles])
        diff = (full - alone).abs()
        scale = alone.abs().clamp_min(case.atol / max(case.rtol, 1e-300))
        worst = max(worst, float((diff / scale).max()) if diff.numel() else 0.0)
        equal &= bool(torch.allclose(full, alone, rtol=case.rtol, atol=case.atol))
    flops = case.flops / batched_s if (case.flops and str(device).startswith("cuda")) else None
    return KernelTiming(study, case.name, members, batched_s, loop_s, worst, equal, flops,
                        len(idx) if sampled else None)


def bench_kernels(studies: Sequence, members: Sequence[int], device: str, progress: bool = True,
                  loop_members: int | None = None) -> list[KernelTiming]:
    out = []
    for study in studies:
        if not hasattr(study, "bench_case"):
            if progress:
                print(f"  {study.NAME}: no bench_case, skipped")
            continue
        for m in members:
            for case in study_cases(study, m, device):
                timing = time_kernel(study.NAME, case, m, device, loop_members=loop_members)
                out.append(timing)
                if progress:
                    scaled = f" (from {timing.loop_members})" if timing.loop_members else ""
                    print(f"  {study.NAME:16s} {case.name:28s} M={m:4d}  batched {timing.batched_s:8.4f}s  "
                          f"loop {timing.loop_s:8.3f}s{scaled}  x{timing.speedup:7.1f}  equal={timing.equal}"
                          f"{_flops_text(timing, device)}", flush=True)
    return out


def float64_peak(device: str) -> float | None:
    """The card's dense float64 peak FLOP/s from `FLOAT64_PEAK`, if the card is listed."""
    if not str(device).startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((peak for card, peak in FLOAT64_PEAK.items() if card in name), None)


def _flops_text(timing: KernelTiming, device: str) -> str:
    if timing.flops_per_s is None:
        return ""
    peak = float64_peak(device)
    share = f" = {timing.flops_per_s / peak:.1%} of float64 peak" if peak else ""
    return f"  {timing.flops_per_s / 1e9:.1f} GFLOP/s{share}"


def study_cases(study, members: int, device: str) -> list[KernelCase]:
    """A study's kernels: ``bench_cases`` (several) if it has them, else its one ``bench_case``."""
    if hasattr(study, "bench_cases"):
        return list(study.bench_cases(members, device))
    return [study.bench_case(members, device)]


@dataclass
class PresetTiming:
    what: str
    wall_s: float
    peak_rss_mb: float
    exit_code: int


def time_command(what: str, argv: list[str], env: dict | None = None) -> PresetTiming:
    """Wall time and peak RSS of a command run in a fresh subprocess (Linux's ``wait4``: the
    largest resident set of the process and of the children it waited for, e.g. the book's
    notebook kernels; not their sum)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return PresetTiming(what, wall, usage.ru_maxrss / 1024.0, proc.returncode)


def bench_presets(studies: Sequence, preset: str, root: str, include_reproduce: bool) -> list[PresetTiming]:
    out = []
    for study in studies:
        argv = [sys.executable, "-m", "workbench.cli", "run", study.NAME, "--preset", preset, "--force", "--quiet",
                "--out", root]
        t = time_command(f"{study.NAME} [{preset}]", argv)
        print(f"  {t.what:32s} {t.wall_s:8.1f}s  peak RSS {t.peak_rss_mb:8.0f} MB  exit {t.exit_code}", flush=True)
        out.append(t)
    if include_reproduce:
        argv = [sys.executable, "-m", "workbench.cli", "reproduce", "--force", "--quiet", "--out", root]
        t = time_command("workbench reproduce", argv, env={"WORKBENCH_RUNS": root})
        print(f"  {t.what:32s} {t.wall_s:8.1f}s  peak RSS {t.peak_rss_mb:8.0f} MB  exit {t.exit_code}", flush=True)
        out.append(t)
    return out


def summarise(kernels: list[KernelTiming], presets: list[PresetTiming], device: str) -> list[str]:
    """Which targets are met, in words."""
    lines = []
    target = TARGET_SPEEDUP_GPU if str(device).startswith("cuda") else TARGET_SPEEDUP_CPU
    top = max((k.members for k in kernels), default=0)
    for k in kernels:
        if k.members == top:
            ok = k.speedup >= target
            scaled = f", loop time scaled from {k.loop_members} members" if k.loop_members else ""
            lines.append(f"{k.study} / {k.kernel}: ensemble x{k.speedup:.1f} at M={k.members} "
                         f"(target >= {target:g}x: {'met' if ok else 'NOT met'}{scaled}); member i == run i: {k.equal}")
    for p in presets:
        if p.what == "workbench reproduce":
            ok = p.wall_s <= TARGET_REPRODUCE_S and p.exit_code == 0
            lines.append(f"workbench reproduce: {p.wall_s / 60:.1f} min (target <= 15 min: {'met' if ok else 'NOT met'})")
    return lines


def bench_random_draws(device: str, members: int = 512, steps: int = 64, draws: int = 100) -> dict[str, float]:
    """float64 normal draws per second for (members, steps, draws): one call of `workbench.streams`
    against a loop of one `torch.Generator` per member (the scheme the streams replace)."""
    from workbench.runtime import single_thread
    from workbench.streams import bench_streams

    with single_thread(device):
        philox = bench_streams(members, steps, draws, device=device)
        gens = [torch.Generator().manual_seed(i) for i in range(members)]
        start = time.perf_counter()
        for g in gens:
            torch.randn(steps, draws, generator=g, dtype=torch.float64).to(device)
        _sync(device)
        loop = members * steps * draws / (time.perf_counter() - start)
    print(f"Random draws ({members} members x {steps} steps x {draws} normals, float64): workbench.streams "
          f"{philox / 1e6:.1f} M/s in one call, per-member torch.Generator loop {loop / 1e6:.1f} M/s "
          f"(x{philox / loop:.2f})", flush=True)
    return {"streams": philox, "generator_loop": loop}


def main(members: Sequence[int] = (1, 8, 64, 512), device: str = "cpu", studies: Sequence[str] = (),
         presets: bool = True, include_reproduce: bool = False, out: str | None = None, json_path: str | None = None,
         loop_members: int | None = None) -> int:
    import tempfile

    from workbench import registry
    from workbench.config import resolve_device

    device = resolve_device(device)
    mods = [registry.get_study(s) for s in studies] if studies else registry.all_studies()
    machine = torch.cuda.get_device_name() if device.startswith("cuda") else f"{os.cpu_count()} CPU cores"
    print(f"workbench bench on {device} ({machine}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("Training kernels: ensemble of M members as one program vs a Python loop over members")
    kernels = bench_kernels(mods, members, device, loop_members=loop_members)
    streams = bench_random_draws(device)
    timings: list[PresetTiming] = []
    if presets:
        print("Presets (fresh subprocess each):")
        timings = bench_presets(mods, "quick", out or tempfile.mkdtemp(prefix="wb-bench-"), include_reproduce)
    print("Targets:")
    for line in summarise(kernels, timings, device):
        print("  " + line)
    if json_path:
        data = {"device": device, "machine": machine, "torch": torch.__version__,
                "kernels": [dict(k.__dict__, speedup=k.speedup) for k in kernels], "random_draws_per_s": streams,
                "presets": [p.__dict__ for p in timings]}
        with open(json_path, "w") as f:
            json.dump(data, f, indent=2)
    return 0 if all(k.equal for k in kernels) else 1
