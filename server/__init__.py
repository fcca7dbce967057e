"""``slmkit serve``: a local HTTP server in OpenAI's shape over any artifact slmkit loads.

``schema`` (request and response bodies), ``engine`` (the worker that owns the runtime: queue, slots,
cancellation, timeouts), ``metrics`` (Prometheus text), ``app`` (routes, API key, errors, body limit) and
``run`` (binding rules and uvicorn). Needs the ``serve`` extra (FastAPI, uvicorn); never torch.
"""
