"""Scan and Snap: how one softmax attention layer learns which tokens to attend to
(Tian, Wang, Chen, Du, NeurIPS 2023, arXiv 2305.16380), with JoMA's MLP extension
(Tian et al., ICLR 2024, arXiv 2310.00535).

The claim: trained by SGD on sequence classes, the attention logits of distinct tokens rise and
those of common tokens fall (Theorem 2); distinct tokens are ranked by their co-occurrence
P(l|n) and attention first scans (low-frequency tokens drop out in order, Theorem 3) then snaps,
freezing once the decoder has learned, at t_0 ~ 2 K ln M / eta_Y, into a sparse but not one-hot
pattern whose sparsity grows with eta_Z and falls with eta_Y / eta_Z (Theorem 4).

``run(config)`` executes the phases of `studies.scan_snap.simulate` (SGD runs, the R1 / R1m / R2
ODEs, the Fig. 6 sweep, exact population GD and the scan search, the JoMA extension, the snap
bound), each stored as ``<phase>.<field>``:

>>> from studies import scan_snap as ss                                     # doctest: +SKIP
>>> record = ss.run(ss.Config.quick())                                      # doctest: +SKIP
>>> ss.checks(record), ss.figures(record), ss.predict(ss.Config.quick())    # doctest: +SKIP
"""
from studies.scan_snap import data, joma, model, population, sgd, simulate, theory
from studies.scan_snap.bench import bench_case
from studies.scan_snap.checks import checks
from studies.scan_snap.config import Config
from studies.scan_snap.figures import figures
from studies.scan_snap.simulate import PHASES, run
from studies.scan_snap.theory import predict

NAME = "scan-snap"
TITLE = "Scan and Snap: sparse attention from SGD dynamics (with JoMA's MLP extension)"
REFERENCES = ["tian2023scan", "tian2024joma"]
"""BibTeX keys of book/references.bib."""

__all__ = ["NAME", "TITLE", "REFERENCES", "Config", "PHASES", "run", "predict", "checks", "figures", "bench_case",
           "data", "joma", "model", "population", "sgd", "simulate", "theory"]
