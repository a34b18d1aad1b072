"""Started by MicroPython at power-up, after boot.py: the field node's firmware."""

from fieldnode.app import run

run()
