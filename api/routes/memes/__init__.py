"""Memes: generate (produce to Kafka), batch, read status and metadata, fetch image bytes, delete.

Auth: reading and generating are open to anonymous callers (rate-limited by IP); generated memes
are owned by the caller when authenticated; deleting needs the owner or an admin.
Reads go through the Redis meme cache (final states only) and count a view, fire-and-forget.

One module per concern, each with its own router under `/api/meme`.
"""

from fastapi import APIRouter

from api.routes.memes import batch, deletes, generate, images, reads

#: In the order the paths are matched and documented (`/recent` before `/{meme_id}`); the app
#: includes each (api/routes/memes/routing.py says why not through one parent router).
ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router for module in (generate, batch, reads, deletes, images)
)
