from workbench.cli import study_main
from studies import random_features as _study
raise SystemExit(study_main(_study))
