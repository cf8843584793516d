"""Simulators of what is around a box: SIP phones (`branchline sim`) now; the MCU and Modbus devices later. Built on edge_core's sans-I/O SIP stack."""
