"""Hardware access: Modbus buses, GPIO inputs and device models built from profile data.

Nothing here knows of MQTT, storage or configuration files.
"""
