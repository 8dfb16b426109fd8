"""The Redis bus (``--bus redis://…``): sharded pub/sub per class, presence in keys.

Outgoing: after an edit's COMMIT (and after each analysis, scoring, presence change) the
node puts one message on ``inkstone:class:{class}`` with ``SPUBLISH``, from one queue,
so a document's messages leave in version order. A full queue or a Redis outage drops
messages: receivers notice the version gap and re-read the store.

Incoming: the node ``SSUBSCRIBE``s to the classes its teachers observe and hands each
message from another node to :class:`server.bus.relay.Relay`. After a lost connection it
resubscribes and asks the relay to compare every copy with the store.

Presence: ``inkstone:node:{id}`` is refreshed every ``heartbeat_s`` with a TTL of
``node_ttl_s``; ``inkstone:presence:{class}`` maps a document key to ``node|state``. A
teacher's node reads the hashes of its classes every ``presence_poll_s``: a student on
a node whose key expired is offline (``node_ttl_s + presence_poll_s`` ≤ 10 s after the
node died).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.bus.relay import Relay

if TYPE_CHECKING:
    from server.documents import Analysis, Document, SentenceState
    from server.service import Inkstone

__all__ = ["RedisBus"]

log = logging.getLogger("inkstone.bus")


# Set a document's presence; "offline" only by the node that holds it (a student who
# moved to another node is not sent offline by the old one's late disconnect).
CLAIM = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if string.sub(ARGV[2], -8) == '|offline' and v and string.sub(v, 1, #ARGV[3] + 1) ~= ARGV[3] .. '|'
then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def channel(class_id: str) -> str:
    return f"inkstone:class:{class_id}"


class RedisBus:
    distributed = True

    def __init__(
        self,
        url: str,
        node_id: str,
        *,
        node_ttl_s: float = 5.0,
        heartbeat_s: float = 1.5,
        presence_poll_s: float = 2.0,
        queue_limit: int = 10_000,
    ) -> None:
        self.url = url
        self.node = node_id
        self.node_ttl_ms = int(node_ttl_s * 1000)
        self.heartbeat_s = heartbeat_s
        self.presence_poll_s = presence_poll_s
        self.redis = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.outbox: asyncio.Queue[tuple[str, bytes | None, tuple[str, str, str] | None]] = (
            asyncio.Queue(queue_limit)
        )
        # subscribers per class channel (PUBSUB SHARDNUMSUB), for the classes published lately
        self.listeners: dict[str, int] = {}
        self.recent: set[str] = set()
        self.listeners_s = 0.5
        self.relay: Relay | None = None
        self.watched: set[str] = set()
        self.subscribed: set[str] = set()
        self.stats = {"published": 0, "dropped": 0, "received": 0, "reconnects": 0, "unheard": 0}
        self.tasks: list[asyncio.Task[None]] = []
        self._resubscribe = asyncio.Event()

    def attach(self, service: Inkstone) -> None:
        self.relay = Relay(service, self)

    async def start(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.set(f"inkstone:node:{self.node}", "1", px=self.node_ttl_ms)
        jobs = (
            self._publisher(),
            self._subscriber(),
            self._heartbeat(),
            self._poll(),
            self._count_listeners(),
        )
        for job in jobs:
            self.tasks.append(asyncio.create_task(job))

    async def close(self) -> None:
        log.info("bus %s: %s", self.node, self.stats)
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.redis.delete(f"inkstone:node:{self.node}")
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    # ------------------------------------------------------------ outgoing

    def _put(
        self, class_id: str, body: dict[str, Any] | None, hset: tuple[str, str, str] | None = None
    ) -> None:
        data = None
        if body is not None:
            body["n"] = self.node
            data = orjson.dumps(body)
        try:
            self.outbox.put_nowait((channel(class_id), data, hset))
        except asyncio.QueueFull:
            self.stats["dropped"] += 1

    def _heard(self, class_id: str) -> bool:
        """Whether a node other than this one may listen on the class's channel. With
        HAProxy hashing classes, most classes have no remote teacher: their messages are
        not published at all. Unknown or stale counts publish; a teacher's node that
        subscribes re-reads its copies once the counts have caught up (``_catch_up``)."""
        self.recent.add(class_id)
        count = self.listeners.get(class_id)
        if count is None or count > (1 if class_id in self.subscribed else 0):
            return True
        self.stats["unheard"] += 1
        return False

    async def _count_listeners(self) -> None:
        while True:
            await asyncio.sleep(self.listeners_s)
            classes, self.recent = sorted(self.recent), set()
            fresh: dict[str, int] = {}
            with contextlib.suppress(RedisError, OSError):
                if classes:
                    counts = await self.redis.pubsub_shardnumsub(*map(channel, classes))
                    names = {channel(c): c for c in classes}
                    fresh = {names[_text(name)]: int(n) for name, n in counts}
            self.listeners = fresh  # classes not published lately: unknown again

    def updated(self, doc: Document, version: int, applied: list[Any]) -> None:
        if not self._heard(doc.class_id):
            return
        changes = [[a.start, a.end, a.text] for a in applied]
        self._put(doc.class_id, {"t": "u", "k": doc.id, "v": version, "c": changes})

    def hints(
        self,
        doc: Document,
        analysis: Analysis,
        changed: list[SentenceState],
        removed: list[str],
        timing: dict[str, float] | None,
    ) -> None:
        if (not changed and not removed) or not self._heard(doc.class_id):
            return  # nothing for another node's teachers to show
        body = {
            "t": "h",
            "k": doc.id,
            "v": analysis.version,
            "a": analysis.to_json(),
            "ch": [s.id for s in changed],
            "rm": removed,
            "tm": timing,
        }
        self._put(doc.class_id, body)

    def scores(self, doc: Document, wire: dict[str, Any]) -> None:
        if not self._heard(doc.class_id):
            return
        self._put(doc.class_id, {"t": "s", "k": doc.id, "v": wire.get("version"), "w": wire})

    def presence(self, doc: Document, state: str) -> None:
        hset = (f"inkstone:presence:{doc.class_id}", doc.id, f"{self.node}|{state}")
        body = {"t": "p", "k": doc.id, "s": state, "v": doc.version}
        self._put(doc.class_id, body if self._heard(doc.class_id) else None, hset)

    def new_doc(self, doc: Document) -> None:
        if not self._heard(doc.class_id):
            return
        self._put(doc.class_id, {"t": "d", "k": doc.id, "v": doc.version})

    async def _publisher(self) -> None:
        """Everything queued goes in one pipelined round trip, in order."""
        while True:
            batch = [await self.outbox.get()]
            while not self.outbox.empty() and len(batch) < 256:
                batch.append(self.outbox.get_nowait())
            try:
                pipe = self.redis.pipeline(transaction=False)
                for name, data, hset in batch:
                    if hset is not None:
                        await self._flush(pipe)
                        pipe = self.redis.pipeline(transaction=False)
                        if not await self.redis.eval(
                            CLAIM, 1, hset[0], hset[1], hset[2], self.node
                        ):
                            continue  # another node holds the student now: its word stands
                    if data is not None:
                        pipe.spublish(name, data)
                await self._flush(pipe)
            except (RedisError, OSError) as exc:
                self.stats["dropped"] += len(batch)
                log.debug("publish dropped: %s", exc)

    async def _flush(self, pipe: Any) -> None:
        n = len(pipe)
        if n:
            await pipe.execute()
            self.stats["published"] += n

    # ------------------------------------------------------------ incoming

    def watch(self, class_id: str) -> None:
        """A teacher here observes ``class_id`` (or one of its documents)."""
        if class_id not in self.watched:
            self.watched.add(class_id)
            self._resubscribe.set()
            if self.relay is not None:
                self._spawn(self._refresh_presence([class_id]))

    def on_load(self, doc: Document) -> None:
        if self.relay is not None:
            self.relay.on_load(doc)

    async def _subscriber(self) -> None:
        first = True
        while True:
            pubsub = self.redis.pubsub()
            try:
                self.subscribed = set()
                while True:
                    wanted = set(self.watched)
                    if wanted - self.subscribed:
                        new = wanted - self.subscribed
                        await pubsub.ssubscribe(*[channel(c) for c in new])
                        self.subscribed |= wanted
                        self._spawn(self._catch_up(sorted(new)))
                        if not first and self.relay is not None:
                            await self.relay.resync(list(self.watched))
                        first = False
                    if not self.subscribed:
                        self._resubscribe.clear()
                        await self._resubscribe.wait()
                        continue
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                    if message is not None and message.get("type") == "smessage":
                        self._received(message["data"])
            except (RedisError, OSError) as exc:
                self.stats["reconnects"] += 1
                first = False
                log.warning("redis subscription lost (%s); reconnecting", exc)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(0.5)

    def _spawn(self, job: Any) -> None:
        task = asyncio.create_task(job)
        self.tasks.append(task)
        task.add_done_callback(self.tasks.remove)

    async def _catch_up(self, classes: list[str]) -> None:
        """Publishers learn of a new subscriber within ``listeners_s``; whatever they did
        not publish before that is read from the store once they have."""
        await asyncio.sleep(3 * self.listeners_s + 0.2)
        if self.relay is not None:
            await self.relay.resync(classes)

    def _received(self, data: bytes) -> None:
        body = orjson.loads(data)
        if body.get("n") == self.node or self.relay is None:
            return
        self.stats["received"] += 1
        try:
            self.relay.receive(body)
        except Exception:
            log.exception("could not apply a bus message")

    # ------------------------------------------------------------ presence

    async def _heartbeat(self) -> None:
        while True:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.set(f"inkstone:node:{self.node}", "1", px=self.node_ttl_ms)
            await asyncio.sleep(self.heartbeat_s)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.presence_poll_s)
            with contextlib.suppress(RedisError, OSError):
                await self._refresh_presence(list(self.watched))

    async def _refresh_presence(self, classes: list[str]) -> None:
        """Read the presence hashes of ``classes``; a dead node's students are offline."""
        if not classes or self.relay is None:
            return
        tables = [await self.redis.hgetall(f"inkstone:presence:{c}") for c in classes]
        nodes: set[str] = set()
        for table in tables:
            nodes |= {v.decode().partition("|")[0] for v in table.values()}
        nodes.discard(self.node)
        order = sorted(nodes)
        alive = {self.node}
        if order:
            found = await self.redis.mget([f"inkstone:node:{n}" for n in order])
            alive |= {n for n, v in zip(order, found, strict=True) if v is not None}
        states: dict[str, str] = {}
        for table in tables:
            for key, value in table.items():
                node, _, state = value.decode().partition("|")
                if node != self.node:
                    states[key.decode()] = state if node in alive else "offline"
        self.relay.presence_seen(states)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
