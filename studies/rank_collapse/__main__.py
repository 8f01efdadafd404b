from workbench.cli import study_main
from studies import rank_collapse as _study
raise SystemExit(study_main(_study))
