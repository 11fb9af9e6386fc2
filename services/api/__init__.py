"""The HTTP API and the pages people read (FastAPI)."""
