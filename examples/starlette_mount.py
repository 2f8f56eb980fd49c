"""The gateway as a Starlette ``Mount``, next to the app's own routes.

uvicorn examples.starlette_mount:app --port 8000
# Anthropic SDK: base_url="http://127.0.0.1:8000/ai/anthropic"
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from aigw_asgi import Gateway, load_config

gateway = Gateway(load_config())


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with gateway.lifespan():  # closes the gateway's pools at shutdown
        yield


app = Starlette(routes=[Route("/hello", hello), Mount("/ai", app=gateway)], lifespan=lifespan)
