"""Which simulator stands for which device model (a profile's `model`)."""

from __future__ import annotations

from simulators.bollard import BollardSim
from simulators.devices import AnalogModuleSim, FirePanelSim, SimDevice, SmokeDetectorSim
from simulators.door_node import DoorNodeSim

_MODELS: dict[str, type[SimDevice]] = {
    "fire_panel": FirePanelSim,
    "smoke_detector": SmokeDetectorSim,
    "bollard_controller": BollardSim,
    "analog_module": AnalogModuleSim,
    "door_node": DoorNodeSim,
}


def make_device(model: str) -> SimDevice:
    """Build a simulated device for a profile model name."""
    try:
        return _MODELS[model]()
    except KeyError:
        raise ValueError(f"no simulator for device model {model!r}") from None
