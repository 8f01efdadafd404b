import sys

from workbench.cli import study_main

from studies import scan_snap

sys.exit(study_main(scan_snap))
