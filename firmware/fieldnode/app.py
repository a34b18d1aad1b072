"""The node's main loop: sample the loops, answer the gateway, feed the watchdog. Started by `main.py`."""

from fieldnode import config as config_file
from fieldnode.board import Board, maintenance_jumper
from fieldnode.node import Node
from fieldnode.rtu import FrameAssembler, Slave
from fieldnode.ticks import sleep_ms, ticks_add, ticks_diff, ticks_ms, ticks_us

CONFIG_PATH = "config.json"
TEMP_EVERY_MS = 5000


def run(path: str = CONFIG_PATH) -> None:
    """Run for ever. The watchdog starts before the loop; a loop that stops for `watchdog_ms` resets the node."""
    config, problem = config_file.load(path)
    if problem:
        print("campus-edge node:", problem)
    if maintenance_jumper(config.maintenance_pin):
        # The watchdog cannot be stopped once started, and mpremote stops the loop to copy files: without this
        # way out, every update would be cut short by a reset.
        print(f"campus-edge node: maintenance jumper on GP{config.maintenance_pin}: not started")
        return
    board = Board(config)
    node = Node(config, config_fault=bool(problem), watchdog_restart=board.watchdog_restart())
    slave = Slave(config.unit, node, node.counters)
    frames = FrameAssembler(config.frame_gap_us())
    board.start_watchdog()
    last_sample = ticks_ms()
    last_temp = ticks_add(last_sample, -TEMP_EVERY_MS)  # read the temperature at once
    while True:
        now = ticks_ms()
        if ticks_diff(now, last_sample) >= config.sample_ms:
            last_sample = now
            node.sample(board.levels(), now)
        if ticks_diff(now, last_temp) >= TEMP_EVERY_MS:
            last_temp = now
            node.board_temp_dc = board.board_temp_dc()
        data = board.receive()
        frame = frames.feed(data, ticks_us()) if data else frames.poll(ticks_us())
        if frame is not None:
            reply = slave.handle(frame)
            if reply is not None:
                board.send(reply)
        board.feed()
        sleep_ms(1)
