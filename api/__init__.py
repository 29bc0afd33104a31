"""The FastAPI app: REST producer API, live feed, web editor, metrics and health."""
