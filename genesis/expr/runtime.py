"""The functions expressions may call, shared by the compiler and the reference evaluator."""


def clamp(value, low, high):
    """`value` limited to the range [low, high]."""
    return min(max(value, low), high)


FUNCTIONS = {"abs": abs, "min": min, "max": max, "clamp": clamp, "round": round}
