"""One function per channel kind that delivers one message, and the channel records
built from genesis.yaml `notifications.channels` (defaults filled in by the schema).

Secrets (webhook URLs with their tokens, bot tokens, routing keys, SMTP passwords) are
read from the environment variables a channel names, when a message is sent, and never
put in an error text: a failure names the channel and what went wrong, not the URL.

Every HTTP kind is a JSON POST (stdlib urllib): Slack and Discord incoming webhooks
take the webhook URL from `url_env`, PagerDuty Events v2 and Telegram post to
`endpoint`, which points at the public service by default and can point at a local
receiver in tests."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from genesis.durations import parse_duration

SECRET_KEYS = ("url_env", "token_env", "routing_key_env", "username_env", "password_env")
NEEDS = {"webhook": ("url_env",), "slack": ("url_env",), "discord": ("url_env",),
         "telegram": ("token_env", "chat_id"), "pagerduty": ("routing_key_env",),
         "email": ("smtp_host", "from", "to")}
PAGERDUTY_ENDPOINT = "https://events.pagerduty.com/v2/enqueue"   # `endpoint: null` means these
TELEGRAM_ENDPOINT = "https://api.telegram.org"
PD_SEVERITY = {"info": "info", "warning": "warning", "critical": "critical"}
SEVERITY_ORDER = {"info": 1, "warning": 2, "critical": 3}


class DeliveryFailed(Exception):
    """A message did not reach a channel; the text names the channel, never a secret.
    `permanent`: trying again cannot help (a variable not set, a request the receiver refuses)."""

    def __init__(self, text: str, permanent: bool = False):
        super().__init__(text)
        self.permanent = permanent


@dataclass
class Message:
    """One notification as the channels see it."""

    ts: int            # event time, ms
    severity: str      # info, warning, critical
    rule: str          # the rule that notified
    text: str
    status: str = "firing"   # firing, resolved, test
    parts: tuple[Message, ...] = ()   # a group: the messages it stands for, in the order they came

    @classmethod
    def of(cls, note) -> Message:
        """The message of an engine notification (genesis.engine.engine.Notification)."""
        return cls(note.ts, note.severity, note.rule, note.text, note.status)

    @classmethod
    def group(cls, messages: list[Message]) -> Message:
        """One message standing for `messages` (two or more) that came within a channel's
        `group_wait`: the most severe severity, the rules joined by commas, one line each."""
        severity = max((m.severity for m in messages), key=lambda s: SEVERITY_ORDER.get(s, 0))
        rules = ",".join(dict.fromkeys(m.rule for m in messages))
        status = "firing" if any(m.status == "firing" for m in messages) else messages[0].status
        text = f"{len(messages)} alerts:\n" + "\n".join(_line(m) for m in messages)
        return cls(messages[0].ts, severity, rules, text, status, tuple(messages))

    def each(self) -> tuple[Message, ...]:
        """The single messages this one stands for (itself when it is not a group)."""
        return self.parts or (self,)

    def record(self) -> dict:
        """The JSON body of the generic webhook and the log file line; a group adds `alerts`,
        the record of each message in it."""
        out = {"ts": self.ts, "severity": self.severity, "rule": self.rule, "text": self.text,
               "status": self.status, "source": "genesis"}
        if self.parts:
            out["alerts"] = [m.record() for m in self.parts]
        return out


@dataclass
class Channel:
    """One channel of genesis.yaml, defaults filled in."""

    name: str
    kind: str
    settings: dict
    min_interval_s: float = 0.0
    group_wait_s: float = 0.0
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 1.0
    fallback: str | None = None
    root: Path = field(default_factory=Path)   # relative log paths are under this folder (the working folder)

    def missing_env(self, environ=os.environ) -> list[str]:
        """Environment variables this channel names that are not set."""
        return [self.settings[k] for k in SECRET_KEYS if self.settings.get(k) and not environ.get(self.settings[k])]


def channels_from(settings: dict, root: Path) -> dict[str, Channel]:
    """Channel records from genesis.yaml `notifications` (as loaded, defaults filled in);
    a log channel's relative `path` is under `root`."""
    out = {}
    for name, ch in settings["channels"].items():
        out[name] = Channel(name, ch["kind"], dict(ch), parse_duration(ch["min_interval"]),
                            parse_duration(ch["group_wait"]), parse_duration(ch["timeout"]), int(ch["retries"]),
                            parse_duration(ch["backoff"]),
                            ch.get("fallback"), Path(root))
    return out


def send(channel: Channel, message: Message, environ=os.environ) -> None:
    """Deliver one message to one channel; raises DeliveryFailed."""
    sender = SENDERS.get(channel.kind)
    if sender is None:
        raise DeliveryFailed(f"channel {channel.name}: unknown kind {channel.kind!r}")
    sender(channel, message, environ)


def _secret(channel: Channel, key: str, environ) -> str:
    name = channel.settings.get(key)
    value = environ.get(name, "") if name else ""
    if not value.strip():
        raise DeliveryFailed(f"channel {channel.name}: environment variable {name} is not set", permanent=True)
    return value.strip()


def _post(channel: Channel, url: str, body: dict) -> None:
    # the senders import their network modules when they send: `genesis validate` reads NEEDS and SECRET_KEYS only
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "genesis"})
    try:
        with urllib.request.urlopen(request, timeout=channel.timeout_s) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:   # the text of an error can echo the URL: only the status is kept
        raise DeliveryFailed(f"channel {channel.name}: the receiver answered HTTP {exc.code}",
                             permanent=400 <= exc.code < 500 and exc.code not in (408, 429)) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"channel {channel.name}: could not reach the receiver "
                             f"({type(reason).__name__ if not isinstance(reason, str) else reason})") from None


def _line(message: Message) -> str:
    if message.parts:   # the parts carry their own marks
        return f"[{message.severity}] {message.text}"
    mark = "RESOLVED " if message.status == "resolved" else ""
    return f"[{message.severity}] {mark}{message.text} ({message.rule})"


def _console(channel, message, environ) -> None:
    for part in message.each():
        print(f"\r{_line(part)}".ljust(150), flush=True)


def _log(channel: Channel, message: Message, environ) -> None:
    path = Path(channel.settings["path"])
    if not path.is_absolute():
        path = channel.root / path
    line = "".join(json.dumps(part.record()) + "\n" for part in message.each())   # one record per message
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _rotate(path, len(line), int(channel.settings["max_bytes"]), int(channel.settings["backups"]))
        with path.open("a", encoding="utf-8") as out:
            out.write(line)
    except OSError as exc:
        raise DeliveryFailed(f"channel {channel.name}: cannot write {path} ({exc.strerror or exc})") from None


def _rotate(path: Path, adding: int, max_bytes: int, backups: int) -> None:
    """Before a write that would take `path` past `max_bytes`: path.1 ... path.N keep the older lines."""
    if backups < 1 or not path.exists() or path.stat().st_size + adding <= max_bytes:
        return
    for i in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{i + 1}"))
    path.replace(path.with_name(f"{path.name}.1"))


def _webhook(channel, message, environ) -> None:
    _post(channel, _secret(channel, "url_env", environ), message.record())


def _slack(channel, message, environ) -> None:
    _post(channel, _secret(channel, "url_env", environ), {"text": _line(message)})


def _discord(channel, message, environ) -> None:
    _post(channel, _secret(channel, "url_env", environ), {"content": _line(message)[:2000]})


def _telegram(channel, message, environ) -> None:
    token = _secret(channel, "token_env", environ)
    url = f"{(channel.settings.get('endpoint') or TELEGRAM_ENDPOINT).rstrip('/')}/bot{token}/sendMessage"
    _post(channel, url, {"chat_id": channel.settings["chat_id"], "text": _line(message)})


def _pagerduty(channel, message, environ) -> None:
    key = _secret(channel, "routing_key_env", environ)
    for part in message.each():   # one event per rule: each incident is resolved by its own dedup_key
        body = {"routing_key": key, "event_action": "resolve" if part.status == "resolved" else "trigger",
                "dedup_key": f"genesis-{part.rule}"}
        if part.status != "resolved":
            body["payload"] = {"summary": part.text[:1024], "source": "genesis", "component": part.rule,
                               "severity": PD_SEVERITY.get(part.severity, "error")}
        _post(channel, channel.settings.get("endpoint") or PAGERDUTY_ENDPOINT, body)


def _email(channel: Channel, message: Message, environ) -> None:
    import smtplib  # noqa: PLC0415
    import ssl  # noqa: PLC0415
    from email.message import EmailMessage  # noqa: PLC0415

    s = channel.settings
    mail = EmailMessage()
    what = f"{len(message.parts)} alerts: {message.rule.replace(',', ', ')}" if message.parts else message.rule
    mail["Subject"] = f"[genesis {message.severity}] {what}"
    mail["From"] = s["from"]
    mail["To"] = ", ".join(s["to"])
    mail.set_content("".join(_line(part) + "\n" for part in message.each()))
    try:
        with smtplib.SMTP(s["smtp_host"], int(s["smtp_port"]), timeout=channel.timeout_s) as smtp:
            if s["starttls"]:
                smtp.starttls(context=ssl.create_default_context())
            if s.get("username_env"):
                smtp.login(_secret(channel, "username_env", environ), _secret(channel, "password_env", environ))
            smtp.send_message(mail)
    except smtplib.SMTPException as exc:
        code = getattr(exc, "smtp_code", None)
        raise DeliveryFailed(f"channel {channel.name}: the SMTP server refused the message"
                             f"{f' ({code})' if code else ''}") from None
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryFailed(f"channel {channel.name}: could not reach the SMTP server "
                             f"{s['smtp_host']}:{s['smtp_port']} ({type(exc).__name__})") from None


SENDERS = {"console": _console, "log": _log, "webhook": _webhook, "slack": _slack, "discord": _discord,
           "telegram": _telegram, "pagerduty": _pagerduty, "email": _email}
