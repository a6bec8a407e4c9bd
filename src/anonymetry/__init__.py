"""anonymetry: privacy-first product telemetry."""

__version__ = "0.1.0"
