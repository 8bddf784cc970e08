"""Binance error answers: ``{"code": -XXXX, "msg": "..."}`` with the HTTP status Binance
uses. Messages are Binance's own wording so that clients (ccxt maps some of them by
text) react as they do against the real exchange. No message ever contains a secret,
a signature or a request's raw text."""
from __future__ import annotations


class ApiError(Exception):
    """A request the simulated exchange refuses."""

    def __init__(self, code: int, msg: str, status: int = 400, headers: dict | None = None):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict:
        """The JSON body Binance sends."""
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> ApiError:
    """-1102: a required parameter is missing or empty."""
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str, legal: str) -> ApiError:
    """-1100: a parameter's value has the wrong form."""
    return ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def too_much_precision(name: str) -> ApiError:
    """-1111: more decimals than the asset allows."""
    return ApiError(-1111, f"Parameter '{name}' has too much precision.")


def filter_failure(name: str) -> ApiError:
    """-1013: an exchangeInfo filter refused the order."""
    return ApiError(-1013, f"Filter failure: {name}")


def rejected(msg: str) -> ApiError:
    """-2010: the new order was rejected by the matching engine."""
    return ApiError(-2010, msg)


INVALID_SYMBOL = (-1121, "Invalid symbol.")
BAD_SIGNATURE = (-1022, "Signature for this request is not valid.")
OUTSIDE_RECV_WINDOW = (-1021, "Timestamp for this request is outside of the recvWindow.")
AHEAD_OF_SERVER = (-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
RECV_WINDOW_TOO_BIG = (-1131, "recvWindow must be less than 60000")
API_KEY_FORMAT = (-2014, "API-key format invalid.")
API_KEY_INVALID = (-2015, "Invalid API-key, IP, or permissions for action.")
INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE_ORDER = "Duplicate order sent."
WOULD_TAKE = "Order would immediately match and take."
UNKNOWN_ORDER = (-2011, "Unknown order sent.")
NO_SUCH_ORDER = (-2013, "Order does not exist.")
INVALID_LISTEN_KEY = (-1125, "This listenKey does not exist.")
INVALID_ORDER_TYPE = (-1116, "Invalid orderType.")
INVALID_TIF = (-1115, "Invalid timeInForce.")
BOTH_IDS_MISSING = (-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
QTY_MISSING = (-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
SERVER_BUSY_503 = (-1007, ("Timeout waiting for response from backend server. Send status unknown; "
                           "execution status unknown."))
UNKNOWN_ERROR = (-1000, "An unknown error occurred while processing the request.")


def err(pair: tuple[int, str], status: int = 400) -> ApiError:
    """An ApiError from one of the (code, msg) pairs above."""
    return ApiError(pair[0], pair[1], status)
