"""Live trading: the exchange edge (REST through ccxt, websockets), reconciliation and the live session."""
