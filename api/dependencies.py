"""What request handlers need from the app's lifespan: clients of every store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from api.data_layer import DataLayer
from api.feed import FeedRelay
from api.inference import InferenceClient
from api.outbox import OutboxRelay
from api.template_lookup import TemplateLookup
from domain.ai.suggest import TemplateSuggester
from domain.settings import Settings
from domain.templates import TemplateCatalog
from producers.producer import EventProducer
from sinks.postgres.memes import MemeRepository
from sinks.storage import ObjectStore


@dataclass(slots=True)
class Services:
    settings: Settings
    producer: EventProducer
    pool: AsyncConnectionPool
    memes: MemeRepository
    storage: ObjectStore
    catalog: TemplateCatalog
    data: DataLayer | None = None  # Redis, users, votes, templates, views, analytics
    feed: FeedRelay | None = None  # the live feed relay (api/feed), started by the lifespan
    # Publishes the outbox (votes, deletes, review decisions) to Kafka; started by the lifespan.
    outbox: OutboxRelay | None = None
    # AI through the inference workers (api/inference.py): this process loads no model.
    inference: InferenceClient | None = None
    # Image suggestions (hashes) and the keyword fallback of text suggestions; no model.
    suggester: TemplateSuggester | None = None
    # Catalogue and uploaded templates for the AI features (uploads from PostgreSQL, cached).
    template_lookup: TemplateLookup = field(default_factory=TemplateLookup)


async def get_services(request: Request) -> Services:
    # async: a sync dependency would cost a thread-pool hop on every request.
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
