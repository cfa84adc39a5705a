"""The server, built on trio around the protocol's state machine.

The pump that serves a connection over a trio stream, the socket stream,
the listeners (TCP, unix sockets, systemd's), the memory budget, the
server's TLS, the supervisor of workers, the signals, the metrics, the log,
and the config. The public names are exported from `trio_echo`.
"""
