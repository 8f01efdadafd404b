from workbench.cli import study_main
from studies import scan_snap as _study
raise SystemExit(study_main(_study))
