import sys

from helpers.imdb.cli import main

sys.exit(main())
