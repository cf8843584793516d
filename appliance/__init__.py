"""The rack appliance's hardware side: front-panel MCU firmware, host-side serial and Modbus links, device simulators. Must not import fleet/."""
