"""The gateway as the whole app, under any ASGI server (what ``aigw serve`` does with uvicorn).

    uvicorn examples.standalone:app --port 8787 --loop uvloop --http httptools
    hypercorn examples.standalone:app --bind 127.0.0.1:8787
    granian --interface asgi examples.standalone:app --port 8787

As the top-level app the gateway answers the ``lifespan`` scope itself (closing its pools at
shutdown). The config comes from ``$AIGW_CONFIG`` (a TOML file) or the embedded defaults.
"""

from __future__ import annotations

from aigw_asgi import Gateway, load_config

app = Gateway(load_config())
