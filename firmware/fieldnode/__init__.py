"""campus-edge field node: supervised door contacts read through the ADC, served as a Modbus RTU slave.

Everything here except `board` and `app` is plain Python that runs unchanged on MicroPython (the node) and on
CPython (the host tests): no `machine`, no `typing` at run time, no dataclasses, time passed in as tick counts.
"""

FW_MAJOR = 1
FW_MINOR = 0
FW_VERSION = FW_MAJOR * 256 + FW_MINOR  # as register fw_version carries it: major * 256 + minor
