"""Build a kernel with the series applied, boot it in QEMU, run guest tests, report."""

__version__ = "0.1.0"
