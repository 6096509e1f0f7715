"""Superseded by the package's DARTS supernet trainer, ``python3 -m katib.trainers.darts``,
which takes the same arguments (``--algorithm-settings``, ``--search-space``,
``--num-layers``, plus ``--data``) and searches the cell in PyTorch (the nas extra:
``pip install 'katib-lite[nas]'``).

Kept so that commands naming this script still run.
"""

from __future__ import annotations

import sys

from katib.trainers.darts import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
