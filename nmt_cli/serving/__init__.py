"""`nmt serve`: translation over HTTP, with the sentences of concurrent requests batched.

- batcher.py: the dynamic batcher (asyncio in front, one search thread behind); no web stack.
- api.py: the FastAPI app (routes, request and response models, limits, error bodies).
- server.py: loading the model, binding the socket, running uvicorn, graceful shutdown.

Only api.py and server.py import the web stack (the `serve` extra), and only `nmt serve`
imports them, so every other command works without it.
"""
