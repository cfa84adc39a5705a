"""The client: one exchange with a server, checked byte for byte, and load runs.

Where the server is (`_endpoint`), the exchange of bytes (`_exchange`, and
for a message sent as it is read, `_streamed`), the checks of a reply
(`_replies`), one exchange in each mode (`_echo`) and the load run
(`_load`). What a mode sends and expects back is its rules'
(`trio_echo.protocol.ModeRules`). It uses the protocol and what both ends
share, never the server. The public names are exported from `trio_echo`.
"""
