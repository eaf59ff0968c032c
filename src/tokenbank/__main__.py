"""``python -m tokenbank``: the ``tokenbank`` command, for environments without the console script."""

from __future__ import annotations

from tokenbank.cli import main

if __name__ == "__main__":
    main()
