"""FastAPI routers, one per concept."""
