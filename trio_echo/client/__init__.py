"""The client: one exchange with a server, checked byte for byte, and load runs.

It uses the protocol and what both ends share, never the server. The public
names are exported from `trio_echo`.
"""
