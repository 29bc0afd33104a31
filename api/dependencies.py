"""What request handlers need from the app's lifespan: clients of every store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from api.data_layer import DataLayer
from api.feed import FeedRelay
from api.inference import InferenceClient
from api.outbox import OutboxRelay
from domain.ai.suggest import TemplateSuggester
from domain.settings import Settings
from domain.templates import TemplateCatalog
from producers.producer import EventProducer
from sinks.postgres.memes import MemeRepository
from sinks.postgres.template_lookup import TemplateLookup
from sinks.postgres.upload_refresher import UploadRefresher
from sinks.storage import ObjectStore


@dataclass(slots=True)
class Services:
    settings: Settings
    producer: EventProducer
    pool: AsyncConnectionPool
    memes: MemeRepository
    storage: ObjectStore
    catalog: TemplateCatalog
    # Catalogue and uploaded templates (uploads from PostgreSQL, cached): generate, batch, AI.
    template_lookup: TemplateLookup
    data: DataLayer | None = None  # Redis, users, votes, templates, views, analytics
    feed: FeedRelay | None = None  # the live feed relay (api/feed), started by the lifespan
    # Publishes the outbox (votes, deletes, review decisions) to Kafka; started by the lifespan.
    outbox: OutboxRelay | None = None
    # AI through the inference workers (api/inference.py): this process loads no model.
    inference: InferenceClient | None = None
    # Image suggestions (hashes) and the keyword fallback of text suggestions; no model.
    suggester: TemplateSuggester | None = None
    # Uploads handed to `suggester` for text suggestions, read incrementally.
    uploads: UploadRefresher | None = None


async def get_services(request: Request) -> Services:
    # async: a sync dependency would cost a thread-pool hop on every request.
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
