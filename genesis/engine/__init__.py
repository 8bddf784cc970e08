"""The runtime: events in, metrics and rules, actions on one trading state, orders out."""
