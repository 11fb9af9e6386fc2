# trial-ledger services: one image, one role per container (`trial-ledger serve <role>`).
# compose.yaml and deploy/k8s/ run it; NATS and PostgreSQL come from their own images there.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LEDGER_DATA_DIR=/var/lib/trial-ledger

WORKDIR /app
COPY pyproject.toml README.md ./
COPY events ./events
COPY projections ./projections
COPY services ./services
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/trial-ledger --create-home ledger

USER ledger
EXPOSE 8000
ENTRYPOINT ["trial-ledger"]
CMD ["--help"]
