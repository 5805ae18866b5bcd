"""The change feed: every write to a model the data plane reads records (version, kind, object id) in the same
transaction, so a gateway process that read the feed up to version N knows everything committed up to N.

Recording lives in the models' save/delete, querysets and m2m signals (DataPlaneModel below), not in each
service: a writer cannot forget it, whether it is a service, the Django admin, a management command or a
factory. Fields the data plane never reads (a key's last_used_at) are written without a change.

Versions come from one counter row, held from a transaction's first watched write to its commit: versions
become visible in order, with no gaps, and every writer takes the counter before its rows, so writers of
watched rows cannot deadlock on it.

After commit, the new version is published on Redis (channel tollway:changes) so every process reads at once;
the periodic read in each process is the safety net when a publish is lost.
"""

import hashlib
import logging
import time
from collections.abc import Iterable
from typing import ClassVar

from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models.signals import m2m_changed, post_delete, pre_delete

log = logging.getLogger(__name__)


def deployment_id() -> str:
    """This deployment's name in Redis: one per database, so deployments (or test runs) that share a Redis server
    do not wake each other, nor share breakers and latencies."""
    database = settings.DATABASES["default"]
    identity = f"{database.get('HOST', '')}:{database.get('PORT', '')}/{database['NAME']}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def channel() -> str:
    """The Redis channel of this deployment's feed."""
    return f"tollway:changes:{deployment_id()}"


TENANT, TEAM, KEY, SUBSCRIPTION, PRODUCT, BUDGET, CATALOGUE, PROMPT = (
    "tenant",
    "team",
    "key",
    "subscription",
    "product",
    "budget",
    "catalogue",
    "prompt",  # a prompt template, its versions or its publications: object id is the template's
)
KINDS = (TENANT, TEAM, KEY, SUBSCRIPTION, PRODUCT, BUDGET, CATALOGUE, PROMPT)

# Past this many rows in one write, one kind-wide change is recorded instead of one per row.
_MAX_IDS_PER_WRITE = 1000

_TAKE_VERSIONS_SQL = (
    # Upsert, so a flushed table (tests, a restored dump) starts again after the highest version left.
    "INSERT INTO routing_changecounter (id, version) "
    "VALUES (1, (SELECT COALESCE(MAX(version), 0) + %s FROM routing_changeevent)) "
    "ON CONFLICT (id) DO UPDATE SET version = routing_changecounter.version + %s RETURNING version"
)


def hold_feed(using: str = "default") -> None:
    """Take the feed's counter row before writing a watched row, inside the writer's transaction. Every writer
    takes it first, then its rows, so two writers never wait on each other in opposite orders (a deadlock)."""
    with connections[using].cursor() as cursor:
        cursor.execute(_TAKE_VERSIONS_SQL, [0, 0])


def record_changes(kind: str, object_ids: Iterable[int | None], *, using: str = "default") -> None:
    """Record that these objects changed (None: all of this kind), inside the caller's transaction."""
    object_ids = list(object_ids)
    ids = [None] if None in object_ids else sorted(set(object_ids))
    if len(ids) > _MAX_IDS_PER_WRITE:
        ids = [None]
    if not ids:
        return
    from routing.models import ChangeEvent  # the models module imports this one

    with transaction.atomic(using=using, savepoint=False):
        with connections[using].cursor() as cursor:
            cursor.execute(_TAKE_VERSIONS_SQL, [len(ids), len(ids)])
            last = cursor.fetchone()[0]
        first = last - len(ids) + 1
        ChangeEvent.objects.using(using).bulk_create(
            ChangeEvent(version=first + n, kind=kind, object_id=object_id) for n, object_id in enumerate(ids)
        )
        _publish_after_commit(using)


def _publish_after_commit(using: str) -> None:
    # Once per transaction, however many changes it records.
    connection = connections[using]
    if not any(callback is _publish for _, callback, _ in connection.run_on_commit):
        _redis()  # made now, so the publish right after commit does not wait for an import and a connection
        transaction.on_commit(_publish, using=using)


_redis_clients: dict = {}  # REDIS_URL -> client (one per process, per URL the settings have named)
_publish_paused_until = 0.0  # after a failed publish, writers don't wait on an absent Redis for a while


def _redis():
    client = _redis_clients.get(settings.REDIS_URL)
    if client is None and settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
        _redis_clients[settings.REDIS_URL] = client
    return client


def _publish() -> None:
    global _publish_paused_until
    if not settings.REDIS_URL or time.monotonic() < _publish_paused_until:
        return
    try:
        _redis().publish(channel(), b"1")
    except Exception as exc:
        # The change is committed; processes still read it within TOLLWAY_SNAPSHOT_REFRESH_S.
        _publish_paused_until = time.monotonic() + 5.0
        log.warning(
            "change feed: could not notify gateways through Redis (%s); they read it on their next refresh", exc
        )


class ChangeRecordingQuerySet(models.QuerySet):
    """Queryset writes that bypass Model.save() record their changes too."""

    def update(self, **fields):
        if not self.model.records_change_of(fields):
            return super().update(**fields)
        with transaction.atomic(using=self.db, savepoint=False):
            ids = list(self.values_list("pk", flat=True)[: _MAX_IDS_PER_WRITE + 1])
            hold_feed(self.db)
            updated = super().update(**fields)
            self.model.record_changes_of(ids, using=self.db)
        return updated

    def bulk_create(self, objs, *args, **kwargs):
        with transaction.atomic(using=self.db, savepoint=False):
            hold_feed(self.db)
            created = super().bulk_create(objs, *args, **kwargs)
            self.model.record_changes_of([obj.pk for obj in created], using=self.db)
        return created

    # bulk_update() writes through update() above, once per batch: it needs nothing of its own.


class DataPlaneModel(models.Model):
    """A model the gateway's data plane reads: every write records a change of `change_kind`."""

    change_kind: ClassVar[str]
    # Catalogue rows change as one: an alias, its deployments and their providers are reloaded together.
    change_per_object: ClassVar[bool] = True
    # Fields the data plane does not read: writing only these records nothing.
    fields_without_change: ClassVar[frozenset[str]] = frozenset()

    objects = ChangeRecordingQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and not self.records_change_of(update_fields):
            return super().save(*args, **kwargs)
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using, savepoint=False):
            hold_feed(using)
            super().save(*args, **kwargs)
            self.record_changes_of([self.pk], using=using)

    @classmethod
    def records_change_of(cls, fields: Iterable[str]) -> bool:
        return not set(fields) <= cls.fields_without_change

    @classmethod
    def record_changes_of(cls, pks: Iterable[int | None], *, using: str) -> None:
        record_changes(cls.change_kind, list(pks) if cls.change_per_object else [None], using=using)


def _before_delete(sender, instance, using, **kwargs):
    hold_feed(using)


def _on_delete(sender, instance, using, **kwargs):
    # Sent inside the deleting transaction, for cascaded rows too (a team's keys).
    sender.record_changes_of([instance.pk], using=using)


def _on_m2m_changed(sender, instance, action, reverse, model, pk_set, using, **kwargs):
    if action in ("pre_add", "pre_remove"):
        hold_feed(using)
        return
    if action == "pre_clear":
        hold_feed(using)
    if action == "post_clear":
        return  # recorded at pre_clear, while the rows to clear were still known
    owner = model if reverse else type(instance)
    if reverse:
        pks = list(pk_set) if pk_set is not None else _related_pks(instance, owner)
    else:
        pks = [instance.pk]
    if issubclass(owner, DataPlaneModel):
        owner.record_changes_of(pks, using=using)


def _related_pks(instance, owner) -> list[int | None]:
    # A reverse clear: which owners pointed at this instance (e.g. keys scoped to a subscription).
    for field in owner._meta.many_to_many:
        if field.related_model is type(instance):
            return list(owner.objects.filter(**{field.name: instance}).values_list("pk", flat=True))
    return [None]


def data_plane_models() -> list[type[DataPlaneModel]]:
    from django.apps import apps

    return [model for model in apps.get_models() if issubclass(model, DataPlaneModel)]


def connect_signals() -> None:
    """Called once from routing's AppConfig.ready()."""
    for model in data_plane_models():
        pre_delete.connect(_before_delete, sender=model, dispatch_uid=f"change-feed-hold-{model._meta.label}")
        post_delete.connect(_on_delete, sender=model, dispatch_uid=f"change-feed-delete-{model._meta.label}")
        for field in model._meta.many_to_many:
            through = field.remote_field.through
            m2m_changed.connect(_on_m2m_changed, sender=through, dispatch_uid=f"change-feed-m2m-{through._meta.label}")


def prune(*, older_than_h: float | None = None, batch_size: int = 10_000) -> int:
    """Delete changes older than TOLLWAY_CHANGES_RETENTION_H. A process whose last version was pruned rebuilds
    (the read sees the hole), so this bounds the table, never correctness."""
    from datetime import timedelta

    from django.utils import timezone

    from routing.models import ChangeEvent

    hours = settings.TOLLWAY_CHANGES_RETENTION_H if older_than_h is None else older_than_h
    horizon = timezone.now() - timedelta(hours=hours)
    deleted = 0
    while True:
        batch = list(
            ChangeEvent.objects.filter(created_at__lt=horizon)
            .order_by("version")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not batch:
            return deleted
        deleted += ChangeEvent.objects.filter(pk__in=batch).delete()[0]
