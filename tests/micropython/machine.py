"""A ``machine`` shim for the WebAssembly MicroPython (which has no ``machine``).

Just enough of ``Pin``, ``UART`` and ``WDT`` for ``appliance.firmware.board`` to run:
pins remember their level, the UART has an input buffer the test fills and an output
buffer it drains, the WDT counts its feeds. Written in MicroPython, loaded as
``/lib/machine.py`` next to the firmware.
"""

PINS = {}


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.level = 1 if pull == Pin.PULL_UP else 0
        if value is not None:
            self.level = 1 if value else 0
        self.history = [self.level]
        PINS[id] = self

    def value(self, *args):
        if not args:
            return self.level
        level = 1 if args[0] else 0
        if level != self.level:
            self.history.append(level)
        self.level = level
        return None


class UART:
    LAST = None

    def __init__(self, id, baudrate=9600, tx=None, rx=None):
        self.rx = bytearray()
        self.tx = bytearray()
        UART.LAST = self

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        if not self.rx:
            return None
        data = bytes(self.rx)
        self.rx = bytearray()
        return data

    def write(self, buf):
        self.tx.extend(buf)
        return len(buf)


class WDT:
    LAST = None

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        WDT.LAST = self

    def feed(self):
        self.feeds += 1
