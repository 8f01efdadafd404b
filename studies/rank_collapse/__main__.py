import sys

from workbench.cli import study_main

from studies import rank_collapse

sys.exit(study_main(rank_collapse))
