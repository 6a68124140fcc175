"""What each Kafka principal may do, and making the broker agree.

Read from the code, not guessed (every client is built in ``connectors/kafka.py``):

- ``ingest`` (dataflows/ingest_flow.py) reads file-events and uploads with Bytewax's source
  (partitions assigned, offsets in the recovery store: it never joins or commits to a group,
  but librdkafka still looks up the coordinator of Bytewax's fixed ``group.id``, which needs
  Describe on it, else every partition starts with a GROUP_AUTHORIZATION_FAILED that the flow
  would dead-letter), writes status, jobs and dead letters with an idempotent producer.
- ``transcode`` reads jobs, writes status, jobs (``transcode.cancel``) and dead letters.
- ``portal`` (the app, its projector, ``vidflow portal rebuild``, ``vidflow submit --wait``)
  reads status and dead letters, the projector in its group; writes uploads and jobs (upload,
  reprocess, cancel, delete) and replays a flow's dead letter to the topic it came from
  (file-events, uploads, jobs); sees the end offsets of every topic (the operations page);
  its short-lived readers (end offsets, ``submit --wait``) assign partitions and only look
  their group up (Describe).
- ``watcher`` writes file-events.
- ``producer`` (outside producers) writes uploads and nothing else.

Read implies Describe and Write implies Describe on a topic; since Kafka 3.0 an idempotent
producer needs Write on some topic rather than IdempotentWrite on the cluster (KIP-679). Every
binding is LITERAL on the configured names but one: Describe on the ``vidflow-submit-`` groups,
one random group per ``vidflow submit --wait``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
)
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from connectors.retry import wait_until
from core.settings import KafkaSettings, Secret

__all__ = [
    "BYTEWAX_GROUP",
    "Grant",
    "binding",
    "ensure_acls",
    "ensure_scram_users",
    "grants",
    "projector_group",
]

SCRAM_ITERATIONS = 8192


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW rule: ``principal`` may ``operation`` the ``resource`` called ``name``."""

    principal: str
    resource: Literal["topic", "group"]
    name: str
    operation: Literal["read", "write", "describe"]
    pattern: Literal["literal", "prefixed"] = "literal"


BYTEWAX_GROUP = "BYTEWAX_IGNORED"  # the group.id Bytewax 0.21's KafkaSource sets, never joined
WATERMARKS_GROUP = "vidflow-watermarks"  # connectors.kafka.end_offsets
SUBMIT_GROUPS = "vidflow-submit-"  # vidflow.submit.follow, one random group per run


def projector_group(k: KafkaSettings) -> str:
    """The projector's consumer group (as ``portal.projector.group_for`` names it)."""
    return f"vidflow-projector.{k.topic_status}"


def grants(k: KafkaSettings) -> list[Grant]:
    """Every rule the component principals get, for the topic names in ``k``."""

    def topics(
        principal: str, operation: Literal["read", "write", "describe"], *names: str
    ) -> list[Grant]:
        return [Grant(principal, "topic", name, operation) for name in names]

    rules = [
        *topics("ingest", "read", k.topic_file_events, k.topic_uploads),
        Grant("ingest", "group", BYTEWAX_GROUP, "describe"),
        *topics("ingest", "write", k.topic_status, k.topic_jobs, k.topic_dlq),
        *topics("transcode", "read", k.topic_jobs),
        Grant("transcode", "group", BYTEWAX_GROUP, "describe"),
        *topics("transcode", "write", k.topic_status, k.topic_jobs, k.topic_dlq),
        *topics("portal", "read", k.topic_status, k.topic_dlq),
        Grant("portal", "group", projector_group(k), "read"),
        Grant("portal", "group", f"vidflow-webhooks.{k.topic_status}", "read"),  # the sender's
        Grant("portal", "group", WATERMARKS_GROUP, "describe"),
        Grant("portal", "group", SUBMIT_GROUPS, "describe", "prefixed"),
        *topics("portal", "write", k.topic_uploads, k.topic_jobs, k.topic_file_events),
        *topics("portal", "describe", *k.topics()),
        *topics("watcher", "write", k.topic_file_events),
        *topics("producer", "write", k.topic_uploads),
    ]
    return sorted(set(rules))


_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
_OPERATIONS = {
    "read": AclOperation.READ,
    "write": AclOperation.WRITE,
    "describe": AclOperation.DESCRIBE,
}


def binding(grant: Grant) -> AclBinding:
    """The broker's form of a rule (any host: principals, not addresses, are the boundary)."""
    return AclBinding(
        _RESOURCES[grant.resource],
        grant.name,
        _PATTERNS[grant.pattern],
        f"User:{grant.principal}",
        "*",
        _OPERATIONS[grant.operation],
        AclPermissionType.ALLOW,
    )


def ensure_acls(admin: AdminClient, rules: Iterable[Grant], timeout: float = 30.0) -> None:
    """Create the rules (creating one that exists is a no-op, so this is idempotent), and wait
    until the broker enforces them: the controller commits a rule before the broker's
    authorizer has it, and a client let in right then would still be refused."""
    bindings = [binding(rule) for rule in rules]
    if not bindings:
        return
    for future in admin.create_acls(bindings, request_timeout=timeout).values():
        future.result()
    wanted = {str(b) for b in bindings}
    # None matches any name, principal and host (the stubs say str; the library takes None)
    anything: Any = None
    everything = AclBindingFilter(
        ResourceType.ANY, anything, ResourcePatternType.ANY, anything, anything,
        AclOperation.ANY, AclPermissionType.ANY,
    )  # fmt: skip

    def applied() -> None:
        # DescribeAcls is answered by the broker's own authorizer, not the controller
        seen = {str(b) for b in admin.describe_acls(everything).result()}
        if not wanted <= seen:
            raise LookupError(f"{len(wanted - seen)} ACL(s) not applied by the broker yet")

    wait_until("the broker applying vidflow's ACLs", applied, timeout)


def ensure_scram_users(
    admin: AdminClient, passwords: dict[str, Secret], timeout: float = 30.0
) -> list[str]:
    """Give every user in ``passwords`` its SCRAM-SHA-512 credential unless it has one; returns
    the users made. Existing users keep theirs (their sessions and salts are left alone)."""
    described = admin.describe_user_scram_credentials(list(passwords), request_timeout=timeout)
    assert isinstance(described, dict)  # one future per user when users are named
    missing = []
    for user, future in described.items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "RESOURCE_NOT_FOUND":
                raise
            missing.append(user)
    if not missing:
        return []
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, info, passwords[user].reveal().encode())
        for user in missing
    ]
    for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).values():
        future.result()
    return sorted(missing)
