"""The gateway inside a Quart app: Quart has no ``mount``, so wrap its ``asgi_app``.

    uvicorn examples.quart_app:app --port 8000     (or: hypercorn examples.quart_app:app)
    # OpenAI SDK: base_url="http://127.0.0.1:8000/ai/openai"

`aigw_asgi.mount` sends ``/ai/...`` to the gateway and everything else (lifespan included) to
Quart, and closes the gateway when Quart's lifespan shuts down.
"""

from __future__ import annotations

from quart import Quart

from aigw_asgi import Gateway, load_config, mount

app = Quart(__name__)


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


app.asgi_app = mount(app.asgi_app, "/ai", Gateway(load_config()))  # type: ignore[method-assign]
