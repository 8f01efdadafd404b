import sys

from workbench.cli import study_main

from studies import svm_bias

sys.exit(study_main(svm_bias))
