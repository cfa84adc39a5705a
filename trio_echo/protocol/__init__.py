"""The sans-IO core: the framer, its events and errors, and `EchoProtocol`.

`EchoProtocol` is one connection's state machine in each mode. Nothing here
does I/O or imports an I/O library, nor anything else of trio_echo: any pump
(a trio task, an asyncio protocol, a thread) drives it the same way. The
public names are exported from `trio_echo`.
"""
