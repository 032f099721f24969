"""Deflect core library: domain, services, ports, adapters, embedded engines and the composition root."""

__version__ = "0.1.0"
