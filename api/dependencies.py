"""What request handlers need from the app's lifespan: clients of every store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

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


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
