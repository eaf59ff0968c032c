"""The ``tokenbank`` command line (Typer + Rich)."""

from tokenbank.cli.app import app, main

__all__ = ["app", "main"]
