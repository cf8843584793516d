"""Host side of the hardware: the serial link to the front-panel MCU (``panel_link``),
Modbus polling of UPS/PDU/sensors (``modbus``), threshold alarms (``alarms``), the
``hardware:`` config section (``config``) and the process that ties them to the edge
through its local control API (``agent``). Imports the shared protocol from
``appliance.firmware``; must not import fleet/ nor reach into edge_core's internals.
"""
