"""MicroPython firmware for the RP2040 front-panel/watchdog MCU.

Every module here except ``board`` is sans-I/O and runs unchanged on CPython and on
MicroPython (no ``typing``, ``dataclasses`` or ``from __future__``): ``frame`` and
``link`` (the serial protocol, shared with the host), ``messages``, ``watchdog``,
``pager``, ``leds``, ``buttons`` and ``panel`` (all of them together). ``board`` is
the hardware (``machine``, asyncio tasks, ``machine.WDT``); deploy the package tree
and a ``main.py`` of ``from appliance.firmware.board import run; run()``.
``mypy.ini`` checks this folder against micropython-rp2-stubs.
Imports nothing from the host packages.
"""
