"""The HTTP inference service: the shipped classifier and the text-to-image model behind FastAPI.

    python -m serve                      # http://127.0.0.1:8000, OpenAPI page at /docs

Modules, one idea each: `images` (upload -> 32x32 RGB), `batching` (bounded queue + worker
threads that group requests), `models` (loading the deliverables, TFLite batch runner),
`app` (the FastAPI application and its error answers), `bench` (the load test).
"""
