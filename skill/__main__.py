"""`python -m skill ...` is the same as `kd-skill ...`."""

import sys

from skill.cli import main

sys.exit(main())
