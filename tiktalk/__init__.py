"""tiktalk: what every part of tiktalk-kg shares: dataset, metrics, I/O helpers and the CLI."""

__version__ = "0.1.0"
