"""Realtime WebSocket pass-through (SPEC §13): ``WS /{provider}/{path}`` to the provider's socket.

handshake.py  where to connect and with which key and subprotocols (pure, from provider data)
events.py     usage and model read off the frames as they pass (pure, per wire format)
proxy.py      RealtimeProxy: the ASGI app, the relay, the caps, the books for the log row
"""

from .proxy import RealtimeProxy

__all__ = ["RealtimeProxy"]
