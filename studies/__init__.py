"""The studies.  Each entry of ``STUDIES`` is a package ``studies.<name>`` following the study
contract of DESIGN.md; the CLI and the book find studies only through this list (in the order of
the book's chapters)."""

STUDIES: list[str] = [
    "rank_collapse",
    "svm_bias",
    "scan_snap",
    "icl_regression",
    "random_features",
    "head_rank",
    "induction_heads",
]
