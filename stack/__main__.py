"""`python -m stack up|down|status|remote` from the project root (stack.supervisor)."""

import sys

from stack.supervisor import main

sys.exit(main())
