"""``python -m tokenbank.sync``: the standalone sync worker, the same as ``tokenbank sync``."""

from __future__ import annotations

import typer

from tokenbank.cli.sync import sync


def main() -> None:
    typer.run(sync)


if __name__ == "__main__":
    main()
