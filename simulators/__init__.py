"""The device side of the wire: simulated fire panels, smoke detectors, bollard controllers and door contacts.

Simulators speak the same protocols as the hardware (Modbus over TCP and over a serial pseudo-terminal, levels on
GPIO pins) and share no code with the gateway.
"""
