"""Strategy plugins: a kind is a class with a parameter schema (in
schema/strategies.schema.json); instances and parameters come from strategies.yaml."""
from genesis.strategies.base import OrderIntent, Strategy, MarketView, registry

__all__ = ["OrderIntent", "Strategy", "MarketView", "registry"]

# importing the plugins registers their kinds
from genesis.strategies import mean_reversion, spread_arbitrage  # noqa: E402,F401
