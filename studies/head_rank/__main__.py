import sys

from workbench.cli import study_main

from studies import head_rank

sys.exit(study_main(head_rank))
