"""The dialogs behind `genesis ui`'s command keys. Each checks what was typed, says
calmly what to change when something does not fit, and closes with the command's
payload (exactly what `genesis order`, `cancel`, `amend`, `journal`, `reset` and
`override` queue) or with None when closed without sending."""
from __future__ import annotations

from functools import cache

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from genesis.engine.markets import Markets
from genesis.engine.operator import unknown_symbol
from genesis.ui import panels
from genesis.words import counted


class Problem(Exception):
    """Something typed does not fit; the message says what to write instead."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


class CommandForm(ModalScreen[dict | None]):
    """A dialog: heading, a note, the fields, a line for problems, Send and Close.
    Enter in a field sends, Esc closes."""

    BINDINGS = [Binding("escape", "close", "Close")]
    kind = ""
    heading = ""

    def note(self) -> str:
        """What the command does, shown under the heading."""
        return ""

    def fields(self) -> ComposeResult:
        """The input rows."""
        return iter(())

    def payload(self) -> dict:
        """The command's payload from the fields; raises Problem when one does not fit."""
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.heading, classes="heading")
            if self.note():
                yield Static(self.note(), classes="note")
            yield from self.fields()
            yield Static("", id="problem")
            with Horizontal(classes="buttons"):
                yield Button("Send", id="send", variant="primary", compact=True)
                yield Button("Close", id="close", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self.submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.submit()

    def action_close(self) -> None:
        """Close without sending."""
        self.dismiss(None)

    def submit(self) -> None:
        """Send when every field fits; otherwise say what to change and go to that field."""
        try:
            payload = self.payload()
        except Problem as problem:
            self.query_one("#problem", Static).update(str(problem))
            self.query_one(f"#{problem.field}").focus()
            return
        self.dismiss(payload)

    def text(self, field: str) -> str:
        """A field's text, trimmed."""
        return self.query_one(f"#{field}", Input).value.strip()

    def required(self, field: str, problem: str) -> str:
        """A field's text, trimmed; `problem` is said when it is blank."""
        value = self.text(field)
        if not value:
            raise Problem(problem, field)
        return value

    def number(self, field: str, what: str, example: str, required: bool = True) -> float | None:
        """A field's positive number (None when blank and not required)."""
        raw = self.text(field).replace(",", "")
        if not raw and not required:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if not value > 0 or value == float("inf"):
            raise Problem(f"{what}: write a number above 0, e.g. {example}", field)
        return value


def row(label: str, widget) -> Horizontal:
    """A label and its field on one line."""
    return Horizontal(Label(label, classes="label"), widget, classes="row")


class OrderForm(CommandForm):
    """A manual order, market or resting limit, through every pre-trade rule."""

    kind = "order"
    heading = "Order"

    def __init__(self, symbol: str = "", traded: tuple = ()):
        super().__init__()
        self.symbol = symbol
        self.traded = traded   # the configuration's symbols (a live run trades them by the exchange's rules)

    def note(self) -> str:
        return "Goes through every pre-trade rule, like a strategy's order."

    def fields(self) -> ComposeResult:
        yield row("side", Select([("buy", "buy"), ("sell", "sell")], value="buy", allow_blank=False,
                                 id="side", compact=True))
        yield row("symbol", Input(self.symbol, placeholder="e.g. BTCUSDT", id="symbol", compact=True))
        yield row("amount, USD", Input(placeholder="e.g. 40", id="usd", compact=True))
        yield row("limit price", Input(placeholder="blank: a market order", id="limit", compact=True))
        yield row("reason", Input(placeholder="why (asked for at tilt level 2)", id="reason", compact=True))

    def payload(self) -> dict:
        symbol = self.required("symbol", "symbol: write the pair to trade, e.g. BTCUSDT").upper()
        unknown = unknown_symbol(symbol, _markets(), self.traded)   # as `genesis order`: never queue what cannot be sent
        if unknown:
            raise Problem(f"symbol: {unknown}", "symbol")
        payload = {"side": self.query_one("#side", Select).value, "symbol": symbol,
                   "notional_usd": self.number("usd", "amount", "40"), "reason": self.text("reason")}
        limit = self.number("limit", "limit price", "61000", required=False)
        if limit is not None:
            payload["limit"] = limit
        return payload


@cache
def _markets() -> Markets:
    """The engine's market rules (the bundled exchangeInfo), read once."""
    return Markets.load()


class CancelForm(CommandForm):
    """Cancel an open order by its client id."""

    kind = "cancel"
    heading = "Cancel an order"

    def __init__(self, client_id: str = "", orders: list | None = None):
        super().__init__()
        self.client_id, self.orders = client_id, orders or []

    def note(self) -> str:
        return _open_orders_note(self.orders)

    def fields(self) -> ComposeResult:
        yield row("client id", Input(self.client_id, placeholder="e.g. g12", id="client_id", compact=True))

    def payload(self) -> dict:
        return {"client_id": self.required("client_id", "client id: write the order's id, e.g. g12 (the Orders tab "
                                                        "lists them)")}


class AmendForm(CancelForm):
    """Move a resting limit order to a new price."""

    kind = "amend"
    heading = "Move a resting order"

    def fields(self) -> ComposeResult:
        yield from super().fields()
        yield row("new price", Input(placeholder="e.g. 61050", id="price", compact=True))

    def payload(self) -> dict:
        return {**super().payload(), "price": self.number("price", "new price", "61050")}


def _open_orders_note(orders: list) -> str:
    if not orders:
        return "No order is open right now."
    shown = ", ".join(f"{o['client_id']} {o.get('side', '')} {o.get('symbol', '')} at {panels.price(o.get('price'))}"
                      for o in orders[:3])
    more = f" and {len(orders) - 3:,} more" if len(orders) > 3 else ""
    return f"{counted(len(orders), 'open order')}: {shown}{more}"


class ResetForm(CommandForm):
    """A typed reset of one halt: the phrase its rule asks for."""

    kind = "reset"
    heading = "Reset a halt"

    def __init__(self, awaiting: list | None = None):
        super().__init__()
        self.awaiting = [line for line in awaiting or [] if "reset" in line]

    def note(self) -> str:
        if not self.awaiting:
            return "No halt waits for a typed reset right now."
        return "\n".join(self.awaiting)

    def fields(self) -> ComposeResult:
        yield row("phrase", Input(placeholder="the phrase the halt asks for", id="phrase", compact=True))
        yield row("rule", Input(placeholder="blank: the phrase picks the halt", id="rule", compact=True))

    def payload(self) -> dict:
        payload = {"phrase": self.required("phrase", "phrase: type the phrase the halt asks for")}
        if self.text("rule"):
            payload["rule"] = self.text("rule")
        return payload


class OverrideForm(CommandForm):
    """The emergency override: lifts every halt and lock after its phrase."""

    kind = "override"
    heading = "Emergency override"

    def note(self) -> str:
        return ("Lifts every halt and lock. It is not available during its cooldown, and every "
                "attempt is logged and counts toward a demotion. The phrase is genesis.yaml "
                "safety.override_phrase.")

    def fields(self) -> ComposeResult:
        yield row("phrase", Input(placeholder="the override phrase", id="phrase", compact=True))

    def payload(self) -> dict:
        return {"phrase": self.required("phrase", "phrase: type the override phrase")}


class JournalEditor(CommandForm):
    """A journal entry, written in a multi-line editor with a running word count
    against what a lock waiting for an entry needs. Ctrl+S sends."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("ctrl+s", "send", "Send")]
    kind = "journal"
    heading = "Journal entry"

    def __init__(self, words_needed: int = 0):
        super().__init__()
        self.words_needed = words_needed

    def note(self) -> str:
        return "Write what is going on for you. Ctrl+S sends, Esc closes."

    def fields(self) -> ComposeResult:
        yield TextArea(id="entry", soft_wrap=True)
        yield Static(self.count_text(""), id="count")

    def count_text(self, text: str) -> str:
        """'12 words', or '12 of the 500 words the lock waits for' while one waits."""
        words = panels.word_count(text)
        if not self.words_needed:
            return counted(words, "word")
        if words >= self.words_needed:
            return f"{words:,} words: long enough for the lock that waits for an entry"
        return f"{words:,} of the {self.words_needed:,} words the lock waits for"

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.query_one("#count", Static).update(self.count_text(event.text_area.text))

    def action_send(self) -> None:
        """Send the entry."""
        self.submit()

    def payload(self) -> dict:
        text = self.query_one("#entry", TextArea).text
        if not text.strip():
            raise Problem("The entry is empty: write a few words first.", "entry")
        return {"text": text}
