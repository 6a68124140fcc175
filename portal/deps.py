"""Typed dependencies of the portal's handlers, provided by Litestar's dependency injection.

The app factory puts one of each (settings, session maker, storage client, Kafka producer and
admin client, template renderer, live hub, login throttle) in the app's state; this module is the
one place that reads it: handlers ask for them by parameter name and get them typed, instead
of reading and casting ``state`` themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from minio import Minio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.layout import ObjectLayout
from core.settings import Settings
from portal.auth.throttle import LoginThrottle
from portal.fanout import SharedRenders
from portal.files.remux import RemuxSlots
from portal.live.hub import NotifyHub
from portal.templating import TemplateRenderer

__all__ = [
    "DEPENDENCIES",
    "Db",
    "Hub",
    "KafkaAdmin",
    "KafkaProducer",
    "Layout",
    "RemuxSlotsDep",
    "Renders",
    "Sessions",
    "SettingsDep",
    "Storage",
    "StorageProbe",
    "Templates",
    "Throttle",
]

# Parameter types of handlers: the name of the parameter picks the dependency below.
Db: TypeAlias = NamedDependency[AsyncSession]
Sessions: TypeAlias = NamedDependency[async_sessionmaker[AsyncSession]]
SettingsDep: TypeAlias = NamedDependency[Settings]
Storage: TypeAlias = NamedDependency[Minio]
StorageProbe: TypeAlias = NamedDependency[Minio]
KafkaProducer: TypeAlias = NamedDependency[Producer]
KafkaAdmin: TypeAlias = NamedDependency[AdminClient]
Templates: TypeAlias = NamedDependency[TemplateRenderer]
Layout: TypeAlias = NamedDependency[ObjectLayout]
Hub: TypeAlias = NamedDependency[NotifyHub]
Renders: TypeAlias = NamedDependency[SharedRenders]
Throttle: TypeAlias = NamedDependency[LoginThrottle]
RemuxSlotsDep: TypeAlias = NamedDependency[RemuxSlots]


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def provide_sessions(state: State) -> async_sessionmaker[AsyncSession]:
    """The session maker, for work that outlives the request (SSE streams)."""
    maker: async_sessionmaker[AsyncSession] = state.sessions
    return maker


async def provide_db(state: State) -> AsyncIterator[AsyncSession]:
    """One database session per request, closed when the request ends."""
    async with provide_sessions(state)() as session:
        yield session


def provide_storage(state: State) -> Minio:
    storage: Minio = state.storage
    return storage


def provide_storage_probe(state: State) -> Minio:
    """The client readiness probes ask the store with (once, no retries)."""
    probe: Minio = state.storage_probe
    return probe


def provide_producer(state: State) -> Producer:
    producer: Producer = state.producer
    return producer


def provide_kafka_admin(state: State) -> AdminClient:
    """The admin client made at startup (readiness probes ask it for metadata)."""
    admin: AdminClient = state.kafka_admin
    return admin


def provide_templates(state: State) -> TemplateRenderer:
    templates: TemplateRenderer = state.templates
    return templates


def provide_layout(settings: SettingsDep) -> ObjectLayout:
    return ObjectLayout(settings.storage)


def provide_hub(state: State) -> NotifyHub:
    hub: NotifyHub = state.hub
    return hub


def provide_renders(state: State) -> SharedRenders:
    renders: SharedRenders = state.renders
    return renders


def provide_login_throttle(state: State) -> LoginThrottle:
    throttle: LoginThrottle = state.login_throttle
    return throttle


def provide_remux_slots(state: State, settings: SettingsDep) -> RemuxSlots:
    """The app's one bound on download remuxes, made on first use (its limit is a setting)."""
    slots: RemuxSlots | None = state.get("remux_slots")
    if slots is None:
        slots = state["remux_slots"] = RemuxSlots(settings.portal.download_remuxes)
    return slots


DEPENDENCIES: dict[str, Provide] = {
    "settings": Provide(provide_settings, sync_to_thread=False),
    "sessions": Provide(provide_sessions, sync_to_thread=False),
    "db": Provide(provide_db),
    "storage": Provide(provide_storage, sync_to_thread=False),
    "storage_probe": Provide(provide_storage_probe, sync_to_thread=False),
    "producer": Provide(provide_producer, sync_to_thread=False),
    "kafka_admin": Provide(provide_kafka_admin, sync_to_thread=False),
    "templates": Provide(provide_templates, sync_to_thread=False),
    "layout": Provide(provide_layout, sync_to_thread=False),
    "hub": Provide(provide_hub, sync_to_thread=False),
    "renders": Provide(provide_renders, sync_to_thread=False),
    "login_throttle": Provide(provide_login_throttle, sync_to_thread=False),
    "remux_slots": Provide(provide_remux_slots, sync_to_thread=False),
}
