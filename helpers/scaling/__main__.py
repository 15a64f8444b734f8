import sys

from helpers.scaling.cli import main

sys.exit(main())
