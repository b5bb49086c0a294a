"""`python -m rollback_drill.cli`: the `rollback-drill` command."""

import sys

from rollback_drill.cli.app import main

sys.exit(main())
