"""The unified API (``/compat``): OpenAI Chat Completions, OpenAI Responses and Anthropic Messages
clients, any provider behind them (SPEC §12). See docs/compat.md."""

from .middleware import CompatMiddleware

__all__ = ["CompatMiddleware"]
