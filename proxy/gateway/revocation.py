"""Revoking a key or suspending a partner closes its WebSockets on every instance (4401).

The control plane ``group_send``s to the channel-layer group of the key or partner
(vocabulary.key_group / partner_group, proxy/signals.py); each instance joins the groups of the
identities it holds sockets for, once per group. Every snapshot swap also checks the live
sockets again (``revalidate``), in case a message was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

from proxy.gateway.auth import AuthIndex, Identity
from proxy.gateway.vocabulary import key_group, partner_group

log = logging.getLogger("apigw.websocket")

CLOSE_REVOKED = 4401


class Closable(Protocol):
    identity: Identity | None

    def close(self, code: int, reason: str) -> None: ...


def groups_of(identity: Identity) -> list[str]:
    groups = [partner_group(identity.partner.id)]
    if identity.key is not None:
        groups.append(key_group(identity.key.id))
    return groups


class Revocations:
    def __init__(self, sessions: Iterable[Closable], channel_layer: Any = None) -> None:
        self.sessions = sessions
        self.layer = channel_layer
        self._channel: str | None = None
        self._groups: dict[str, int] = {}

    async def listen(self) -> None:
        """Close the sockets of each group a message names, until cancelled."""
        if self.layer is None:
            return
        while True:
            try:
                if self._channel is None:
                    self._channel = await self.layer.new_channel("apigw-ws.")
                message = await self.layer.receive(self._channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the layer reconnects; keep listening
                log.warning("revocation channel error: %s", exc)
                await asyncio.sleep(1.0)
                continue
            self.close_matching(message.get("group", ""), message.get("reason", "credentials revoked"))

    def close_matching(self, group: str, reason: str) -> int:
        closed = 0
        for session in list(self.sessions):
            if session.identity is not None and group in groups_of(session.identity):
                session.close(CLOSE_REVOKED, reason)
                closed += 1
        return closed

    def revalidate(self, index: AuthIndex) -> None:
        """After a snapshot swap: close sockets whose key or partner is no longer good."""
        now = time.time()
        for session in list(self.sessions):
            identity = session.identity
            if identity is None:
                continue
            partner = index.partners.get(identity.partner.id)
            key = index.keys.get(identity.key.prefix) if identity.key is not None else None
            if partner is None or partner.status != "active":
                session.close(CLOSE_REVOKED, "partner suspended")
            elif identity.key is not None and (key is None or (key.expires is not None and key.expires <= now)):
                session.close(CLOSE_REVOKED, "API key revoked or expired")

    async def join(self, identity: Identity) -> None:
        if self.layer is None:
            return
        for group in groups_of(identity):
            self._groups[group] = self._groups.get(group, 0) + 1
            if self._groups[group] == 1:
                try:
                    if self._channel is None:
                        self._channel = await self.layer.new_channel("apigw-ws.")
                    await self.layer.group_add(group, self._channel)
                except Exception as exc:
                    log.warning("could not join revocation group %s: %s", group, exc)

    async def leave(self, identity: Identity) -> None:
        if self.layer is None:
            return
        for group in groups_of(identity):
            self._groups[group] -= 1
            if self._groups[group] == 0:
                del self._groups[group]
                with contextlib.suppress(Exception):
                    await self.layer.group_discard(group, self._channel)
