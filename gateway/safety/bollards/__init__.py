"""Rising bollards: what the gateway must know before it lets one move (DESIGN.md, safety order)."""
