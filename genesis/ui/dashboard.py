"""The dashboard screen of `genesis ui`: a summary row (account, trading state, tilt)
above tabs for the details, an answer line and the command keys. `show` updates the
widgets in place from a status view: nothing is rebuilt, so a refresh never flickers."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Sparkline, Static, TabbedContent, TabPane

from genesis.ui import forms, panels

# (tab id, label, key): the digit keys switch tabs
TABS = (("state", "State", "1"), ("positions", "Positions", "2"), ("orders", "Orders", "3"),
        ("decisions", "Decisions", "4"), ("alerts", "Alerts", "5"), ("ladder", "Ladder", "6"),
        ("gates", "Gates", "7"), ("tilt", "Tilt", "8"), ("commands", "Sent", "9"))
TABLE_COLUMNS = {
    "positions": ("symbol", "quantity", "entry", "mark", "unrealised"),
    "orders": ("id", "symbol", "side", "quantity", "price", "placed"),
    "ladder": ("step", "limit", "now", "", "", "rule"),
}
TEXT_PANES = {"state": panels.state_detail, "decisions": panels.decisions_text, "alerts": panels.alerts_text,
              "gates": panels.gates_text, "tilt": panels.tilt_detail, "commands": panels.commands_text}
TABLE_ROWS = {"positions": panels.position_rows, "orders": panels.order_rows, "ladder": panels.ladder_rows}
HINT = "The engine's answers to your commands show here. Tabs: 1-9."


class Dashboard(Screen):
    """Everything the trader needs at a glance, and the keys to act."""

    BINDINGS = [
        Binding("o", "order", "Order"),
        Binding("c", "cancel_order", "Cancel"),
        Binding("a", "amend", "Amend"),
        Binding("j", "journal", "Journal"),
        Binding("r", "reset", "Reset"),
        Binding("e", "override", "Override"),
        Binding("q", "app.quit", "Quit"),
        Binding("s", "tab('state')", "State", show=False),
        *(Binding(key, f"tab('{tab}')", label, show=False) for tab, label, key in TABS),
    ]

    def __init__(self, view: dict | None = None, traded: tuple = ()):
        super().__init__()
        self.view: dict = view or {}
        self.traded = traded

    def compose(self) -> ComposeResult:
        yield Static("Genesis · reading the journal…", id="title")
        with Horizontal(id="summary"):
            with Vertical(id="account-box", classes="box"):
                yield Static(id="account")
                yield Sparkline([], id="equity-spark")
            yield Static(id="trading", classes="box")
            yield Static(id="tilt-summary", classes="box")
        with TabbedContent(id="tabs"):
            for tab, label, _key in TABS:
                with TabPane(label, id=tab):
                    if tab in TABLE_COLUMNS:
                        table = DataTable(id=f"{tab}-table", cursor_type="row", zebra_stripes=False)
                        table.add_columns(*TABLE_COLUMNS[tab])
                        yield table
                        yield Static(id=f"{tab}-empty", classes="empty")
                    else:
                        with VerticalScroll():
                            yield Static(id=f"{tab}-text")
        yield Static(HINT, id="answer")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#account-box").border_title = "Account"
        self.query_one("#trading").border_title = "Trading"
        self.query_one("#tilt-summary").border_title = "Tilt"
        if self.view:
            self.show(self.view)
        self.app.start_reading()

    def show(self, view: dict) -> None:
        """Update every widget in place from `view`."""
        self.view = view
        self.query_one("#title", Static).update(panels.title(view))
        self.query_one("#account", Static).update(panels.account(view))
        self.query_one("#equity-spark", Sparkline).data = [point[1] for point in view.get("equity_history") or []]
        self.query_one("#trading", Static).update(panels.trading(view))
        self.query_one("#tilt-summary", Static).update(panels.tilt_summary(view))
        for tab, render in TEXT_PANES.items():
            self.query_one(f"#{tab}-text", Static).update(render(view))
        for tab, rows_of in TABLE_ROWS.items():
            self._fill(tab, rows_of(view))

    def _fill(self, tab: str, rows: list[tuple]) -> None:
        """Replace a table's rows only when they changed, keeping the cursor's row."""
        table = self.query_one(f"#{tab}-table", DataTable)
        table.display = bool(rows)
        empty = self.query_one(f"#{tab}-empty", Static)
        empty.display = not rows
        empty.update(_EMPTY[tab])
        shown = [tuple(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]
        if shown == [tuple(str(cell) for cell in row) for row in rows]:
            return
        cursor = table.cursor_row
        table.clear()
        for row in rows:
            table.add_row(*row, key=str(row[0]) if tab != "ladder" else None)
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))

    def say(self, line: str) -> None:
        """Show one line in the answer bar (a command's answer, or what is under way)."""
        self.query_one("#answer", Static).update(line)

    # ------------------------------------------------------------------ keys
    def action_tab(self, tab: str) -> None:
        """Show one tab."""
        self.query_one("#tabs", TabbedContent).active = tab

    def action_order(self) -> None:
        """Open the order dialog (the symbol of the selected position, if any)."""
        self._ask(forms.OrderForm(self._selected("positions"), self.traded))

    def action_cancel_order(self) -> None:
        """Open the cancel dialog for the selected open order."""
        self._ask(forms.CancelForm(self._selected("orders"), self._open_orders()))

    def action_amend(self) -> None:
        """Open the amend dialog for the selected open order."""
        self._ask(forms.AmendForm(self._selected("orders"), self._open_orders()))

    def action_journal(self) -> None:
        """Open the journal-entry editor."""
        self._ask(forms.JournalEditor(panels.journal_words_needed(self.view)))

    def action_reset(self) -> None:
        """Open the typed-reset dialog."""
        self._ask(forms.ResetForm((self.view.get("state") or {}).get("awaiting")))

    def action_override(self) -> None:
        """Open the emergency-override dialog."""
        self._ask(forms.OverrideForm())

    def _ask(self, form: forms.CommandForm) -> None:
        def sent(payload: dict | None) -> None:
            if payload is not None:
                self.app.send_command(form.kind, payload)
        self.app.push_screen(form, sent)

    def _selected(self, tab: str) -> str:
        """The first cell of the table's selected row ('' when the table is empty)."""
        table = self.query_one(f"#{tab}-table", DataTable)
        if not table.row_count:
            return ""
        selected = str(table.get_row_at(table.cursor_row)[0])
        return "" if selected == panels.DASH else selected

    def _open_orders(self) -> list:
        """The orders on the exchange (not those still waiting for a price: they have no id)."""
        return [o for o in self.view.get("orders") or [] if not o.get("waiting")]


_EMPTY = {"positions": "No open positions.", "orders": "No open orders.",
          "ladder": "This tier has no drawdown ladder."}
