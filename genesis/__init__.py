"""Genesis: a declarative trading rules engine for one Binance spot trader."""

from genesis import compiled as _compiled

__version__ = "0.1.0"

_compiled.install()   # the engine's hot modules run from their compiled copies where built
