import sys

# python -m helpers.finetune compare ...: a pretrained model against its random twin (helpers.finetune.twin)
if sys.argv[1:2] == ["compare"]:
    from helpers.finetune.twin import main

    sys.exit(main(sys.argv[2:]))
from helpers.finetune.cli import main

sys.exit(main())
