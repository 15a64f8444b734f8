import sys

from helpers.mlm.cli import main

sys.exit(main())
