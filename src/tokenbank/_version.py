"""The package version, in a leaf module: code inside the package imports it from here, never from the root."""

__version__ = "0.1.0"
