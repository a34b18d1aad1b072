"""GB/T 26875.3-2011, the alarm transmission protocol of city fire remote monitoring (城市消防远程监控系统): the frame
and its stream reader (`frame`), the typed application data units (`adu`) and the code tables (`tables`).

A codec only: no sockets, no clocks, no retries. The link that confirms, denies and resends is built on top.
"""
