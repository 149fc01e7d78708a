"""`python -m adgen` is the `adgen` command."""

import sys

from .cli import main

sys.exit(main())
