"""The studies.  Each entry of ``STUDIES`` is a package ``studies.<name>`` following the study
contract of DESIGN.md; the CLI and the book find studies only through this list."""

STUDIES: list[str] = [
    "rank_collapse",
    "svm_bias",
    "icl_regression",
    "random_features",
]
