"""`python -m gateway.cli`: the campus-edge command line, as the `campus-edge` entry point runs it."""

import sys

from gateway.cli.main import main

sys.exit(main())
