"""The front-panel MCU's logic in one sans-I/O object: link, watchdog, display, LEDs,
buttons and the drill confirmation. ``board`` drives it on the RP2040; the MCU
simulator (``appliance.sim.mcu``) drives it under CPython on a pty.

Inputs: ``receive(bytes, now_ms)``, ``buttons({name: pressed}, now_ms)``,
``poll(now_ms)``. Outputs: ``data_to_send()`` and ``outputs(now_ms)`` (relay, reset
line, LED levels, the two display lines).

Drill: a long press on ``drill`` asks "Start drill?" for ``confirm_ms``; a short press
on ``drill`` then confirms (``DRILL_REQUEST`` to the host), a short press on ``page``
cancels. The host's ``DRILL_RESULT`` is shown for a while. Any other short press
cycles the pages.
"""

from . import frame, leds, link, messages
from .buttons import LONG, SHORT, Button
from .pager import Pager
from .watchdog import HostWatchdog, WatchdogChanged, WatchdogSettings

BUTTON_NAMES = ("page", "drill")


class Outputs:
    """What the pins and the display must show now."""

    def __init__(self, relay_engaged: bool, reset_asserted: bool, leds_on: dict,
                 lines: tuple) -> None:  # fmt: skip
        self.relay_engaged = relay_engaged
        """Bypass relay engaged (coil off): the emergency line goes straight through."""
        self.reset_asserted = reset_asserted
        """Host reset line driven."""
        self.leds_on = leds_on
        """LED name -> lit."""
        self.lines = lines
        """The two display lines, 16 characters each."""


class Panel:
    """Everything the MCU does, without touching a pin."""

    def __init__(self, now_ms: int, boot_id: int, settings: "WatchdogSettings | None" = None,
                 confirm_ms: int = 10000, result_ms: int = 5000) -> None:  # fmt: skip
        self.link = link.Link(link.ROLE_MCU, boot_id, now_ms)
        self.watchdog = HostWatchdog(settings or WatchdogSettings(), now_ms)
        self.pager = Pager(now_ms)
        self.buttons_by_name = {name: Button(name, now_ms) for name in BUTTON_NAMES}
        self.confirm_ms = confirm_ms
        self.result_ms = result_ms
        self.state: dict = {}
        """The last PANEL message from the host."""
        self.confirming_until = -1
        """Tick until which a drill confirmation is pending, -1 if none."""
        self.log: list = []
        """Recent notable happenings (bounded), for the simulator and tests."""
        self._refresh_pages(now_ms)

    # -- inputs ---------------------------------------------------------------------
    def receive(self, data: bytes, now_ms: int) -> None:
        for event in self.link.receive(data, now_ms):
            if isinstance(event, link.Message):
                self._on_message(event, now_ms)
            elif isinstance(event, link.LinkUp):
                self._send_status("link_up", now_ms)
                self._note("link up")
            else:
                self._note(repr(event))

    def _on_message(self, msg: "link.Message", now_ms: int) -> None:
        kind = msg.kind
        if kind == messages.HEARTBEAT:
            healthy = len(msg.body) > 0 and msg.body[0] == 1
            self._watchdog_events(self.watchdog.heartbeat(healthy, now_ms), now_ms)
            return
        try:
            body = messages.decode(msg.body)
        except ValueError:
            self._note(f"bad body for kind {kind}")
            return
        if kind == messages.PANEL:
            self.state = body
            self._refresh_pages(now_ms)
        elif kind == messages.SETTINGS:
            s = self.watchdog.settings
            for name in ("heartbeat_interval_ms", "misses", "reset_pulse_ms",
                         "boot_holdoff_ms", "release_after_ms"):  # fmt: skip
                value = body.get(name)
                if isinstance(value, int) and value > 0:
                    setattr(s, name, value)
        elif kind == messages.DRILL_RESULT:
            ok = bool(body.get("ok"))
            text = str(body.get("text", ""))
            self.pager.show_overlay("Drill started" if ok else "Drill refused", text,
                                    now_ms, self.result_ms)  # fmt: skip

    def buttons(self, pressed: dict, now_ms: int) -> None:
        """Raw button levels (name -> pressed) from one scan."""
        for name, button in self.buttons_by_name.items():
            press = button.update(bool(pressed.get(name, False)), now_ms)
            if press is not None:
                self._on_press(name, press, now_ms)

    def _on_press(self, name: str, press: str, now_ms: int) -> None:
        self._send(messages.BUTTON, {"button": name, "press": press}, now_ms)
        confirming = (
            self.confirming_until >= 0 and frame.ticks_diff(now_ms, self.confirming_until) < 0
        )
        if name == "drill" and press == LONG:
            self.confirming_until = frame.ticks_add(now_ms, self.confirm_ms)
            self.pager.show_overlay("Start drill?", "DRILL=yes PAGE=no", now_ms, self.confirm_ms)
        elif confirming and press == SHORT:
            self.confirming_until = -1
            if name == "drill":
                self._send(messages.DRILL_REQUEST, {}, now_ms)
                self.pager.show_overlay("Drill requested", "waiting for host", now_ms,
                                        self.result_ms)  # fmt: skip
                self._note("drill requested")
            else:
                self.pager.show_overlay("Drill cancelled", "", now_ms, 2000)
        elif press == SHORT:
            self.pager.clear_overlay()
            self.pager.next_page(now_ms)

    def poll(self, now_ms: int) -> None:
        """Run the timers: retries, handshake, the watchdog."""
        for event in self.link.poll(now_ms):
            self._note(repr(event))
        self._watchdog_events(self.watchdog.tick(now_ms), now_ms)
        if self.confirming_until >= 0 and frame.ticks_diff(now_ms, self.confirming_until) >= 0:
            self.confirming_until = -1

    # -- outputs --------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        return self.link.data_to_send()

    def next_timer_ms(self, now_ms: int) -> int:
        return min(self.link.next_timer_ms(now_ms), self.watchdog.next_timer_ms(now_ms))

    def led_patterns(self) -> dict:
        return leds.patterns_for(self.state, self.watchdog.state, self.link.up)

    def outputs(self, now_ms: int) -> Outputs:
        patterns = self.led_patterns()
        lit = {name: leds.level(patterns[name], now_ms) for name in leds.LED_NAMES}
        return Outputs(self.watchdog.relay_engaged, self.watchdog.reset_asserted, lit,
                       self.pager.render(now_ms))  # fmt: skip

    # -- helpers --------------------------------------------------------------------
    def _send(self, kind: int, body: dict, now_ms: int) -> None:
        self.link.send(kind, messages.encode(body), now_ms)

    def _send_status(self, cause: str, now_ms: int) -> None:
        wd = self.watchdog
        self._send(messages.STATUS, {"watchdog": wd.state, "relay": wd.relay_engaged,
                                     "resets": wd.total_resets, "cause": cause}, now_ms)  # fmt: skip

    def _watchdog_events(self, events: list, now_ms: int) -> None:
        for event in events:
            if isinstance(event, WatchdogChanged):
                self._note(repr(event))
                self._send_status(event.cause, now_ms)
        if events:
            self._refresh_pages(now_ms)

    def _note(self, text: str) -> None:
        self.log.append(text)
        if len(self.log) > 32:
            self.log.pop(0)

    def _refresh_pages(self, now_ms: int) -> None:
        st = self.state
        site = str(st.get("site", "Branchline"))
        mode = str(st.get("mode", "no host" if not self.link.up else "normal"))
        wd = self.watchdog
        pages = [(site, "Mode: " + mode)]
        alarm = str(st.get("alarm", "") or "")
        pages.append(("Alarm " + str(st.get("severity", "none")), alarm or "No alarms"))
        pages.append(("Host " + wd.state, ("BYPASS" if wd.relay_engaged else "line via host")
                      + " r" + str(wd.total_resets)))  # fmt: skip
        for extra in st.get("pages", []) or []:
            if isinstance(extra, (list, tuple)) and len(extra) == 2:
                pages.append((str(extra[0]), str(extra[1])))
        self.pager.set_pages(pages, now_ms)
