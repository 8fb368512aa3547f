"""``python -m churnwatch.outside``: see :mod:`churnwatch.outside.run`."""

import sys

from churnwatch.outside.run import main

sys.exit(main())
