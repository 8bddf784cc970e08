"""Counted nouns for messages a person reads: '1 order', '2 orders', '1,500 words'."""
from __future__ import annotations


def counted(count: float, one: str, many: str | None = None) -> str:
    """`count` with thousands separators and the noun in the right number
    ('1 open position', '2 open positions', '1.5 days'; `many` for irregular plurals)."""
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    number = f"{count:,}" if isinstance(count, int) else f"{count:,g}"
    return f"{number} {one if count == 1 else (many or one + 's')}"


def usd(value: float | None, signed: bool = False, decimals: int = 2) -> str:
    """Dollars with thousands separators and the sign first: '$1,234.56', '-$0.26';
    with `signed`, '+$1.20' for a gain; '-' when unknown; never '-$0.00'."""
    if value is None:
        return "-"
    value = round(value, decimals) + 0.0
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    return f"{sign}${abs(value):,.{decimals}f}"
