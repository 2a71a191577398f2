"""``python -m backend.worker``: run the worker server (see :mod:`backend.worker.server`)."""

import sys

from .server import main

sys.exit(main())
