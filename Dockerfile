# The HTTP API (serve/) with the deliverable models baked in.
#   docker build -t tiny-cifar-api .
#   docker run --rm -p 8000:8000 tiny-cifar-api          # then: curl localhost:8000/readyz
# One process per container, one CPU each (--threads 1): scale by running more containers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=3
WORKDIR /app
RUN useradd --create-home --uid 10001 app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt pyproject.toml README.md ./
COPY trainer/ trainer/
COPY serve/ serve/
RUN pip install -r requirements.txt

# The models named in saved_models/DELIVERABLES.json, and the out-of-distribution threshold.
COPY saved_models/ saved_models/
COPY tuning/ood_threshold.json tuning/ood_threshold.json

USER app
EXPOSE 8000
# /readyz turns 200 once both models are loaded (about half a minute); a load balancer sends
# traffic only then.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=3)"
STOPSIGNAL SIGTERM
CMD ["python", "-m", "serve", "--host", "0.0.0.0", "--port", "8000", "--threads", "1"]
