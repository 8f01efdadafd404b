import sys

from workbench.cli import study_main

from studies import icl_regression

sys.exit(study_main(icl_regression))
