"""Hardware glue for an RP2040 board (Raspberry Pi Pico / Pico W): ADC inputs, the RS-485 UART and its
direction pin, the watchdog. Kept thin: every decision is in the plain modules, this file only moves values.

RS-485 is half duplex. The transceiver's driver is enabled by DE (tied to /RE, so the receiver is off while the
node talks): DE goes high just before a reply and low once `flush()` says the last stop bit has left the UART,
so the line is released for the gateway's next request. Bytes read while talking (a transceiver whose receiver
stays on hears its own reply) are thrown away.
"""

import machine

from fieldnode.config import Config

_SAMPLES = 4  # ADC reads averaged per level: the RP2040's ADC is noisy in its lowest bits
_TEMP_CHANNEL = 4  # the RP2040's internal temperature sensor


def maintenance_jumper(pin: int) -> bool:
    """Whether `pin` is tied to GND (a jumper): the installer wants the REPL, not the loop and its watchdog."""
    return machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0


class Board:
    """The node's peripherals, set up from the configuration."""

    def __init__(self, config: Config) -> None:
        self.de = machine.Pin(config.de_pin, machine.Pin.OUT, value=0)
        parity = {"N": None, "E": 0, "O": 1}[config.parity]
        self.uart = machine.UART(
            config.uart,
            baudrate=config.baud,
            bits=8,
            parity=parity,
            stop=config.stop_bits,
            tx=machine.Pin(config.tx_pin),
            rx=machine.Pin(config.rx_pin),
            rxbuf=512,
        )
        self.adcs = [machine.ADC(channel) for channel in config.points]
        self.temp = machine.ADC(_TEMP_CHANNEL)
        self.watchdog_ms = config.watchdog_ms
        self.wdt: machine.WDT | None = None

    def watchdog_restart(self) -> bool:
        """Whether this start followed a reset by the watchdog (the loop had hung)."""
        return machine.reset_cause() == machine.WDT_RESET

    def start_watchdog(self) -> None:
        """Start the hardware watchdog: from now on the loop must call `feed` within `watchdog_ms`, for ever."""
        self.wdt = machine.WDT(timeout=self.watchdog_ms)

    def feed(self) -> None:
        if self.wdt is not None:
            self.wdt.feed()

    def levels(self) -> list[int]:
        """One level (0..65535) per configured point, each the mean of a few reads."""
        out = []
        for adc in self.adcs:
            total = 0
            for _ in range(_SAMPLES):
                total += adc.read_u16()
            out.append(total // _SAMPLES)
        return out

    def board_temp_dc(self) -> int:
        """The RP2040's own temperature in 0.1 Cel (RP2040 datasheet: 27 Cel at 0.706 V, -1.721 mV/Cel)."""
        volts = self.temp.read_u16() * 3.3 / 65535
        return round((27 - (volts - 0.706) / 0.001721) * 10)

    def receive(self) -> bytes:
        """Whatever has arrived since the last call (b"" when nothing has)."""
        waiting = self.uart.any()
        if not waiting:
            return b""
        return self.uart.read(waiting) or b""

    def send(self, frame: bytes) -> None:
        """Drive the line, send `frame`, wait for its last bit, release the line, drop any echo."""
        self.de.value(1)
        try:
            self.uart.write(frame)
            self.uart.flush()
        finally:
            self.de.value(0)
        self.receive()
