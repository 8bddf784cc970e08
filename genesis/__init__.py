"""Genesis: a declarative trading rules engine for one Binance spot trader."""

__version__ = "0.1.0"
