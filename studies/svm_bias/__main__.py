from workbench.cli import study_main
from studies import svm_bias as _study
raise SystemExit(study_main(_study))
