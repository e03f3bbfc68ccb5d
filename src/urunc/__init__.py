"""urunc: an OCI runtime that runs unikernels the way runc runs processes."""

__version__ = "0.1.0"
OCI_VERSION = "1.0.2"
