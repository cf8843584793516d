"""Host side of the hardware: the serial link to the front-panel MCU and Modbus polling of UPS/PDU/sensors (to come with the hardware issue)."""
