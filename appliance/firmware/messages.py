"""Application messages on the link: kinds and their JSON bodies (host and MCU).

Bodies are compact JSON (both interpreters have ``json``), at most frame.MAX_BODY
bytes. Direction and reliability of each kind:

* ``HEARTBEAT`` host -> MCU, unreliable: one byte, 1 = the edge is healthy.
* ``PANEL`` host -> MCU: ``{"site", "mode", "wan", "power", "alarm", "severity",
  "pages": [[line1, line2], ...]}`` - what the front panel shows.
* ``SETTINGS`` host -> MCU: watchdog timings ``{"heartbeat_interval_ms", "misses",
  "reset_pulse_ms", "boot_holdoff_ms", "release_after_ms"}``.
* ``DRILL_RESULT`` host -> MCU: ``{"ok": bool, "text": str}``.
* ``BUTTON`` MCU -> host: ``{"button": "page" | "drill", "press": "short" | "long"}``.
* ``DRILL_REQUEST`` MCU -> host: ``{}`` - confirmed on the panel by the technician.
* ``STATUS`` MCU -> host: ``{"watchdog", "relay", "resets", "cause"}``.
"""

import json

HEARTBEAT = 0x10
PANEL = 0x11
SETTINGS = 0x12
DRILL_RESULT = 0x13
BUTTON = 0x20
DRILL_REQUEST = 0x21
STATUS = 0x22

NAMES = {
    HEARTBEAT: "heartbeat",
    PANEL: "panel",
    SETTINGS: "settings",
    DRILL_RESULT: "drill_result",
    BUTTON: "button",
    DRILL_REQUEST: "drill_request",
    STATUS: "status",
}


def encode(obj: dict) -> bytes:
    """A message body: compact JSON, UTF-8."""
    return json.dumps(obj, separators=(",", ":")).encode()


def decode(body: bytes) -> dict:
    """A message body back to a dict; ``ValueError`` if it is not a JSON object."""
    try:
        obj = json.loads(body.decode())
    except Exception:  # UnicodeError, ValueError: both interpreters differ on which
        raise ValueError("message body is not JSON") from None
    if not isinstance(obj, dict):
        raise ValueError("message body is not a JSON object")
    return obj
