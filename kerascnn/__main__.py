import sys

from kerascnn.cli import main

sys.exit(main())
