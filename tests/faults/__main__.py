"""`python -m tests.faults [--long] [--seed N]`: run the fault harness and print its table."""

import sys

from tests.faults.harness import main

sys.exit(main())
