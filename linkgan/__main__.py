import sys

from linkgan.cli import main

sys.exit(main())
