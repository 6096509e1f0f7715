"""Superseded by the package's ENAS child trainer, ``python3 -m katib.trainers.enas``, which
takes the same arguments (``--architecture``, ``--nn_config``, ``--num_epochs``, ``--data``)
and builds the network in PyTorch (the nas extra: ``pip install 'katib-lite[nas]'``).

Kept so that commands naming this script still run, and for ``parse_value`` (upstream's
argument quoting), which other example trials import.
"""

from __future__ import annotations

import sys

from katib.trainers.enas import main, parse_value

__all__ = ["main", "parse_value"]

if __name__ == "__main__":
    sys.exit(main())
