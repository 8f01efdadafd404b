import sys

from workbench.cli import study_main

from studies import induction_heads

sys.exit(study_main(induction_heads))
