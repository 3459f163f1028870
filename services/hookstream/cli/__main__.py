"""``python -m hookstream.cli``: the same as the ``hookstream`` command."""

import sys

from hookstream.cli.main import main

sys.exit(main())
