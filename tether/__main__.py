"""``python -m tether`` is the ``tether`` command."""

import sys

from tether.cli import main

# The guard matters: vLLM starts its engine core with multiprocessing's ``spawn``, which
# imports this module again in the child.
if __name__ == "__main__":
    sys.exit(main())
