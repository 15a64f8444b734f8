import sys

from helpers.minbert.cli import main

sys.exit(main())
