"""Fixed vectors for the firmware's logic modules, run by both interpreters.

CPython: ``tests/unit/test_hw_vectors.py`` imports this and calls :func:`run`.
MicroPython: ``tests/integration/test_hw_micropython.py`` copies the firmware and this
file into the WebAssembly MicroPython's filesystem and runs ``run()`` there.
So this file is MicroPython-compatible too: no pytest, no typing, no f-string tricks.
Each check raises AssertionError with what differed; ``run()`` returns the count.
"""

from appliance.firmware import frame, leds, link, messages, pager, watchdog
from appliance.firmware.buttons import LONG, SHORT, Button
from appliance.firmware.panel import Panel

CRC_VECTORS = [
    (b"123456789", 0x29B1),  # the catalogue's check value of CRC-16/CCITT-FALSE
    (b"", 0xFFFF),
    (b"\x00", 0xE1F0),
    (b"A", 0xB915),
]

COBS_VECTORS = [  # the examples of Cheshire & Baker's paper / the usual table
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
]

FRAME_VECTORS = [  # kind, seq, body -> exact wire bytes (kind, seq, len, body, CRC, COBS)
    (0x10, 0, b"\x01", b"\x02\x10\x05\x01\x01\xbc\x77\x00"),
    (frame.ACK, 7, b"", b"\x03\x01\x07\x03\x62\x3b\x00"),
    (0x11, 1, b"\x00", b"\x04\x11\x01\x01\x03\xed\xd2\x00"),
]


def _eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def check_ticks():
    _eq(frame.ticks_diff(5, 3), 2, "ticks_diff")
    _eq(frame.ticks_diff(3, 5), -2, "ticks_diff negative")
    top = frame.TICKS_PERIOD - 10
    _eq(frame.ticks_diff(frame.ticks_add(top, 30), top), 30, "ticks_diff across the wrap")
    _eq(frame.ticks_add(top, 30), 20, "ticks_add wraps")


def check_crc():
    for data, want in CRC_VECTORS:
        _eq(frame.crc16(data), want, f"crc16({data!r})")


def check_cobs():
    for raw, enc in COBS_VECTORS:
        _eq(frame.cobs_encode(raw), enc, f"cobs_encode {len(raw)} bytes")
        _eq(frame.cobs_decode(enc), raw, f"cobs_decode {len(raw)} bytes")
    for bad in (b"\x05\x11", b"\x02\x00", b"\x00"):
        try:
            frame.cobs_decode(bad)
        except ValueError:
            continue
        raise AssertionError(f"cobs_decode accepted {bad!r}")


def check_frames():
    for kind, seq, body, wire in FRAME_VECTORS:
        _eq(frame.encode_frame(kind, seq, body), wire, "encode_frame")
        dec = frame.FrameDecoder()
        _eq(dec.feed(wire), [frame.Frame(kind, seq, body)], "decode")
    # every single-bit corruption of a frame is detected
    wire = frame.encode_frame(0x11, 42, b'{"site":"Branch 7"}')
    for bit in range((len(wire) - 1) * 8):
        bad = bytearray(wire)
        bad[bit // 8] ^= 1 << (bit % 8)
        out = frame.FrameDecoder().feed(bytes(bad) + b"\x00")
        for item in out:
            if isinstance(item, frame.Frame):
                raise AssertionError(f"bit {bit} flipped went undetected")
    # garbage, then resynchronisation at the next delimiter
    dec = frame.FrameDecoder()
    out = dec.feed(b"\x13\x37garbage" + b"\x00" + wire)
    _eq(len(out), 2, "garbage then frame")
    _eq(isinstance(out[0], frame.FrameError), True, "garbage is an error")
    _eq(out[1], frame.Frame(0x11, 42, b'{"site":"Branch 7"}'), "frame after garbage")
    # an endless run without delimiter is dropped, not buffered forever
    out = dec.feed(b"\x01" * (frame.MAX_ENCODED * 3) + b"\x00" + wire)
    _eq([getattr(x, "reason", None) for x in out], ["long", None], "overlong run")
    # split anywhere: same frames
    dec = frame.FrameDecoder()
    got = []
    for i in range(len(wire)):
        got.extend(dec.feed(wire[i : i + 1]))
    _eq(got, [frame.Frame(0x11, 42, b'{"site":"Branch 7"}')], "byte by byte")


def _pump(a, b, now, drop_a_to_b=0):
    """Exchange bytes until quiet; returns (events at a, events at b)."""
    ev_a, ev_b = [], []
    for _ in range(10):
        x = a.data_to_send()
        y = b.data_to_send()
        if not x and not y:
            break
        if x:
            if drop_a_to_b > 0:
                drop_a_to_b -= 1
            else:
                ev_b.extend(b.receive(x, now) or [])
        if y:
            ev_a.extend(a.receive(y, now) or [])
    return ev_a, ev_b


def check_link():
    host = link.Link(link.ROLE_HOST, 1, 0, retry_ms=100, max_attempts=3)
    mcu = link.Link(link.ROLE_MCU, 2, 0, retry_ms=100, max_attempts=3)
    ev_h, ev_m = _pump(host, mcu, 0)
    _eq((host.up, mcu.up), (True, True), "handshake")
    _eq([type(e).__name__ for e in ev_h], ["LinkUp"], "host events")
    # delivered once, acked
    host.send(0x11, b"one", 0)
    ev_h, ev_m = _pump(host, mcu, 0)
    _eq([(e.kind, e.body) for e in ev_m], [(0x11, b"one")], "delivery")
    _eq(host.pending(), 0, "acked")
    # the first copy is lost: re-sent after retry_ms, delivered once
    host.send(0x11, b"two", 10)
    _pump(host, mcu, 10, drop_a_to_b=1)
    _eq(host.pending(), 1, "unacked")
    _eq(host.next_timer_ms(10), 100, "retry timer")
    host.poll(110)
    ev_h, ev_m = _pump(host, mcu, 110)
    _eq([e.body for e in ev_m], [b"two"], "retried")
    _eq(host.counters["retries"], 1, "one retry")
    # the ack is lost: the peer sees a duplicate, delivers nothing, re-acks
    host.send(0x11, b"three", 200)
    mcu.receive(host.data_to_send(), 200)
    mcu.data_to_send()  # ack lost
    host.poll(300)
    ev_h, ev_m = _pump(host, mcu, 300)
    _eq(ev_m, [], "duplicate not delivered")
    _eq((mcu.counters["duplicates"], host.pending()), (1, 0), "duplicate re-acked")
    # the peer is gone: LinkDown after max_attempts, HELLO again
    host.send(0x11, b"lost", 400)
    host.data_to_send()
    events = []
    for t in (500, 600, 700):
        events.extend(host.poll(t))
        host.data_to_send()
    _eq([type(e).__name__ for e in events], ["LinkDown"], "link down")
    _eq(host.up, False, "down")
    # the peer restarted: new boot id, handshake, the message in flight goes through
    mcu2 = link.Link(link.ROLE_MCU, 3, 700)
    ev_h, ev_m = _pump(host, mcu2, 700)
    _eq([(type(e).__name__, getattr(e, "restarted", None)) for e in ev_h],
        [("LinkUp", True)], "relink")  # fmt: skip
    _eq([e.body for e in ev_m if isinstance(e, link.Message)], [b"lost"], "resent after relink")
    # another major version is refused
    odd = link.Link(link.ROLE_MCU, 4, 0)
    hello = bytearray(odd.data_to_send())
    raw = bytearray(frame.cobs_decode(bytes(hello[:-1])))
    raw[3] = 9  # the HELLO body's first byte: the protocol version
    fixed = frame.encode_frame(raw[0], raw[1], bytes(raw[3:-2]))
    fresh = link.Link(link.ROLE_HOST, 5, 0)
    events = fresh.receive(fixed, 0)
    _eq([type(e).__name__ for e in events], ["VersionMismatch"], "version mismatch")
    _eq(fresh.up, False, "stays down")


def check_watchdog():
    s = watchdog.WatchdogSettings(heartbeat_interval_ms=1000, misses=3, reset_pulse_ms=200,
                                  boot_holdoff_ms=10000, release_after_ms=5000)  # fmt: skip
    wd = watchdog.HostWatchdog(s, 0)
    _eq((wd.state, wd.relay_engaged), ("starting", True), "boot: relay in safe state")
    t = 0
    while t <= 6000:
        wd.heartbeat(True, t)
        t += 1000
    _eq((wd.state, wd.relay_engaged), ("normal", False), "released after 5 s healthy")
    wd.tick(8999)
    _eq(wd.state, "normal", "3 misses not yet")
    wd.tick(9000)
    _eq((wd.state, wd.relay_engaged, wd.reset_asserted), ("resetting", True, True), "engaged")
    wd.tick(9199)
    _eq(wd.reset_asserted, True, "pulse held")
    wd.tick(9200)
    _eq((wd.state, wd.reset_asserted), ("holdoff", False), "pulse done")
    wd.tick(19199)
    _eq(wd.state, "holdoff", "no reset while the host boots")
    wd.tick(19200)
    _eq((wd.state, wd.total_resets), ("resetting", 2), "second reset after hold-off")
    wd.tick(19400)
    _eq((wd.state, wd.holdoff_ms()), ("holdoff", 20000), "hold-off doubled")
    wd.tick(39399)
    _eq(wd.state, "holdoff", "doubled hold-off respected")
    wd.heartbeat(False, 30000)
    _eq((wd.state, wd.relay_engaged), ("recovering", True), "host up, not healthy")
    wd.heartbeat(True, 31000)
    wd.heartbeat(False, 32000)
    wd.heartbeat(True, 33000)
    wd.heartbeat(True, 34000)
    wd.heartbeat(True, 35000)
    wd.heartbeat(True, 36000)
    wd.heartbeat(True, 37000)
    _eq(wd.state, "recovering", "an unhealthy beat restarts the count")
    wd.heartbeat(True, 38000)
    _eq((wd.state, wd.relay_engaged, wd.resets), ("normal", False, 0), "released")
    # an unhealthy heartbeat in normal engages the relay without a reset
    wd.heartbeat(False, 39000)
    _eq((wd.state, wd.relay_engaged, wd.total_resets), ("recovering", True, 2), "unhealthy")
    # across the ticks wrap
    start = frame.TICKS_PERIOD - 500
    wd = watchdog.HostWatchdog(s, start)
    wd.heartbeat(True, start)
    wd.tick(frame.ticks_add(start, 2999))
    _eq(wd.state, "recovering", "wrap: not yet")
    wd.tick(frame.ticks_add(start, 3000))
    _eq(wd.state, "resetting", "wrap: missed")


def check_pager():
    p = pager.Pager(0, scroll_step_ms=100, scroll_pause_ms=1000)
    p.set_pages([("Branch Seven Paris Nord", "Mode: normal"), ("Alarm", "\u00e9t\u00e9")], 0)
    _eq(p.render(0), ("Branch Seven Par", "Mode: normal    "), "page 0")
    _eq(p.render(1000), ("Branch Seven Par", "Mode: normal    "), "paused")
    _eq(p.render(1300), ("nch Seven Paris ", "Mode: normal    "), "scrolled 3")
    _eq(p.render(1000 + 100 * 19), ("Nord   Branch Se", "Mode: normal    "), "marquee")
    _eq(p.render(1000 + 100 * 26), ("Branch Seven Par", "Mode: normal    "), "came round")
    p.next_page(5000)
    _eq(p.render(5000), ("Alarm           ", "?t?             "), "page 1, ASCII only")
    p.show_overlay("Start drill?", "DRILL=yes", 5000, 3000)
    _eq(p.render(7999)[0], "Start drill?    ", "overlay")
    _eq(p.render(8000)[0], "Alarm           ", "overlay expired")
    p.next_page(9000)
    _eq(p.index, 0, "wraps")


def check_leds():
    _eq([leds.level(leds.SLOW, t) for t in (0, 511, 512, 1023, 1024)],
        [True, True, False, False, True], "slow")  # fmt: skip
    _eq([leds.level(leds.FAST, t) for t in (0, 127, 128, 256)], [True, True, False, True], "fast")
    _eq([leds.level(leds.DOUBLE, t) for t in (0, 200, 300, 500)],
        [True, False, True, False], "double")  # fmt: skip
    pats = leds.patterns_for({"mode": "survivable", "wan": "down", "severity": "critical"},
                             "normal", True)  # fmt: skip
    _eq(pats, {"power": "on", "wan": "slow", "survivable": "on", "alarm": "fast"}, "patterns")
    _eq(leds.patterns_for({}, "starting", False)["power"], "blip", "waiting for host")


def check_buttons():
    b = Button("page", 0, debounce_ms=30, long_ms=1500)
    got = [b.update(True, 0), b.update(False, 10), b.update(True, 20), b.update(True, 49)]
    _eq(got, [None, None, None, None], "bounce ignored")
    _eq(b.update(True, 50), None, "pressed")
    _eq(b.update(False, 300), None, "release bouncing")
    _eq(b.update(False, 330), SHORT, "short")
    b.update(True, 1000)
    b.update(True, 1030)
    _eq(b.update(True, 2499), None, "not long yet")
    _eq(b.update(True, 2500), LONG, "long while held")
    b.update(False, 3000)
    _eq(b.update(False, 3030), None, "no short after long")


def check_panel():
    host = link.Link(link.ROLE_HOST, 1, 0)
    panel = Panel(0, 2, confirm_ms=10000)
    _pump(host, panel, 0)
    host.send(messages.PANEL, messages.encode({"site": "Branch 7", "mode": "normal"}), 0)
    _pump(host, panel, 0)
    _eq(panel.outputs(0).lines, ("Branch 7        ", "Mode: normal    "), "panel page")
    got = []
    t = 0
    for down in (True,) * 80 + (False,) * 5:  # a 1.6 s press on drill: long
        panel.buttons({"drill": down}, t)
        t += 20
    _eq(panel.outputs(t).lines[0], "Start drill?    ", "asks for confirmation")
    for down in (True,) * 5 + (False,) * 5:  # a short press on drill: confirmed
        panel.buttons({"drill": down}, t)
        t += 20
    ev_h, _ = _pump(host, panel, t)
    for e in ev_h:
        if isinstance(e, link.Message):
            got.append((messages.NAMES[e.kind], messages.decode(e.body)))
    kinds = [k for k, _ in got]
    _eq("drill_request" in kinds, True, f"drill requested: {kinds!r}")
    _eq([b for k, b in got if k == "button"],
        [{"button": "drill", "press": "long"}, {"button": "drill", "press": "short"}],
        "button events")  # fmt: skip
    host.send(messages.DRILL_RESULT, messages.encode({"ok": True, "text": "survivable"}), t)
    _pump(host, panel, t)
    _eq(panel.outputs(t).lines, ("Drill started   ", "survivable      "), "result shown")


def run():
    checks = [check_ticks, check_crc, check_cobs, check_frames, check_link, check_watchdog,
              check_pager, check_leds, check_buttons, check_panel]  # fmt: skip
    for check in checks:
        check()
    print("hw_vectors ok", len(checks))
    return len(checks)
