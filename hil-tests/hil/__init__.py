"""The rig the hardware-in-the-loop scenarios run on: its description, the bench lock, and the two backends."""
