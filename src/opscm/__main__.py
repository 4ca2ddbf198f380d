import sys

from opscm.cli import main

sys.exit(main())
