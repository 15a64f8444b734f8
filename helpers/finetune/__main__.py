import sys

from helpers.finetune.cli import main

sys.exit(main())
