"""The gateway inside an existing FastAPI app, under ``/ai``.

    uvicorn examples.fastapi_mount:app --port 8000
    # OpenAI SDK: base_url="http://127.0.0.1:8000/ai/openai"

FastAPI (like Starlette) never runs a mounted app's lifespan, so the gateway opens its pools
lazily and the host's lifespan closes them: ``gateway.lifespan()`` is an async context manager.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from aigw_asgi import Gateway, load_config

gateway = Gateway(load_config())  # $AIGW_CONFIG, else the embedded defaults


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with gateway.lifespan():
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


app.mount("/ai", gateway)
