import os
import sys

# The command only writes image files (`collect --plot`): matplotlib's file backend, whatever
# MPLBACKEND says (a cluster's "module://..." or a misspelt one stopped it after --json was written).
os.environ["MPLBACKEND"] = "agg"

from helpers.scaling.cli import main  # noqa: E402 (after the backend is chosen)

sys.exit(main())
