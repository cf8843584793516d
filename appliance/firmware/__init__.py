"""MicroPython firmware for the RP2040 front-panel/watchdog MCU (to come with the hardware issue). Imports nothing from the host packages."""
