"""``python -m cmt_slurm.agent``: the live env's init job."""

import sys

from .main import main

sys.exit(main())
