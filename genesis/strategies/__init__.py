"""Strategy plugins: a kind is a class with a parameter schema (in
schema/strategies.schema.json); instances and parameters come from strategies.yaml."""
from genesis.strategies.base import CancelIntent, MarketView, OrderIntent, RestingOrder, Strategy, registry

__all__ = ["CancelIntent", "MarketView", "OrderIntent", "RestingOrder", "Strategy", "registry"]

# importing the plugins registers their kinds
from genesis.strategies import mean_reversion, spread_arbitrage  # noqa: E402,F401
from genesis.strategies import statistical_arbitrage  # noqa: E402,F401
from genesis.strategies import liquidity_provision  # noqa: E402,F401
