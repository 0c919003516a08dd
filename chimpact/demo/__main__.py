"""`python -m chimpact.demo`: the whole pipeline on a synthetic world (chimpact.demo.demo)."""

import sys

from chimpact.demo.demo import main

sys.exit(main())
