from workbench.cli import study_main
from studies import icl_regression as _study
raise SystemExit(study_main(_study))
