import sys

from helpers.gpt.cli import main

sys.exit(main())
