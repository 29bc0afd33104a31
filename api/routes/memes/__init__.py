"""Memes: generate (produce to Kafka), batch, read status and metadata, fetch image bytes, delete.

Auth: reading and generating are open to anonymous callers (rate-limited by IP); generated memes
are owned by the caller when authenticated; deleting needs the owner or an admin.
Reads go through the Redis meme cache (final states only) and count a view, fire-and-forget.

One module per concern; this router gathers their routes under `/api/meme`, in the order the
paths are matched and documented (`/recent` before `/{meme_id}`).
"""

from fastapi import APIRouter

from api.problems import LIMITED_STATUSES, problem_responses
from api.ratelimit import RateLimited
from api.routes.memes import batch, deletes, generate, images, reads

router = APIRouter(
    prefix="/api/meme",
    tags=["memes"],
    dependencies=[RateLimited],
    responses=problem_responses(*LIMITED_STATUSES),
)
for _module in (generate, batch, reads, deletes, images):
    router.include_router(_module.router)
