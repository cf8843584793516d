"""Runs the real firmware entry (board.Board and its asyncio tasks) on the machine shim,
under MicroPython: the host's HELLO, PANEL and heartbeats go in through the UART, and
the relay, LCD lines, UART replies and WDT feeds are checked. Prints one result line."""

import asyncio

import machine

from appliance.firmware import board, frame, link, messages


async def scenario():
    b = board.Board()
    uart = machine.UART.LAST
    relay = machine.PINS[board.RELAY]
    assert relay.level == 0, "relay coil off (bypass engaged) at boot"
    host = link.Link(link.ROLE_HOST, 77, board.ticks_ms(), retry_ms=50)
    task = asyncio.create_task(b.main())
    for _ in range(60):  # ~ 0.6 s of firmware time
        now = board.ticks_ms()
        if uart.tx:
            host.receive(bytes(uart.tx), now)
            uart.tx = bytearray()
        host.poll(now)
        if host.up:
            host.send(messages.HEARTBEAT, b"\x01", now, reliable=False)
            if host.counters["tx"] < 6:
                body = messages.encode({"site": "Branch 7", "mode": "survivable"})
                host.send(messages.PANEL, body, now)
        uart.rx.extend(host.data_to_send())
        await asyncio.sleep_ms(10)
    task.cancel()
    assert host.up, "handshake with the firmware"
    assert b.panel.state.get("mode") == "survivable", b.panel.state
    assert b.lcd.shown == ("Branch 7        ", "Mode: survivable"), b.lcd.shown
    assert b.panel.watchdog.state == "recovering", b.panel.watchdog.state
    assert relay.level == 0, "relay stays engaged until healthy for release_after_ms"
    assert machine.WDT.LAST.feeds > 10, machine.WDT.LAST.feeds
    assert machine.PINS[board.LED_PINS["survivable"]].level == 1
    print("board ok", machine.WDT.LAST.feeds, frame.PROTOCOL_VERSION)
