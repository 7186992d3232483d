"""An agent's sockets share its job:ready events: each goes to one of them, so N workers do not try N acks.

Every sharing socket of one agent (one cursor; `?share=true`, as `run_listener`'s workers connect)
reads the whole log from its own subscription. A job:ready event is handed to one socket, chosen by
the first socket that reads it: among the sockets that still have it ahead of them and want it, the
one with the fewest job:ready events in hand (ties go to the reader, which saves a hop). Every other
event goes to every socket that wants it. Sockets of the agent that do not share get every event.

Nothing is lost when a worker goes away holding jobs:

* the agent's cursor is the group's: never past a job:ready handed to a socket that has not acked
  past it, so a worker started later resumes before it;
* when a socket closes while others of its agent stay, the jobs it was handed (or was chosen for
  and had not read yet) that are still ready are announced again (a new job:ready) for them;
* when a group forms (a server restart, a reconnect) from a socket that resumes past the agent's
  cursor, the job:ready events in between whose jobs are still ready are announced again too, since
  the socket that held them may be gone.

A job announced twice is harmless: the ack is an atomic claim, the second one gets a Conflict.
Groups live in one server process; sockets of one agent on two replicas each get every job:ready.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from listener.models import Event
from listener.topics import JOB_READY

__all__ = ["AgentGroup", "AgentGroups", "Member"]

_PRUNE_AT = 1024
"""Choices kept before the ones every member has passed are dropped."""


@dataclass(eq=False)
class Member:
    """One socket of an agent."""

    wanted: Callable[[Event], bool]
    read: int
    """The seq of the last event its subscription yielded."""
    acked: int
    """The highest seq it acked (every event it was sent up to there is handled), or where it started."""
    sent: int = -1
    """The seq of the last event it was sent."""
    pending: dict[int, str] = field(default_factory=dict)
    """job:ready events chosen for it and not yet acked past: seq → job id (its load)."""


class AgentGroup:
    """The sockets of one agent in this process, and which of them each job:ready went to."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: list[Member] = []
        self._chosen: dict[int, Member] = {}
        self._prune_at = _PRUNE_AT
        self._saved = -1

    def join(self, wanted: Callable[[Event], bool], start: int, saved: int | None) -> Member:
        """A socket that reads from after `start`; `saved` is the agent's cursor (None: it has none yet).

        A socket resuming past the cursor has received up to `start`, not handled it: until it acks,
        it counts as having handled up to the cursor only.
        """
        acked = start if saved is None else min(start, saved)
        member = Member(wanted, read=start, acked=acked, sent=start if acked < start else -1)
        if saved is not None:
            self._saved = max(self._saved, saved)
        self.members.append(member)
        return member

    def leave(self, member: Member) -> list[str]:
        """Remove `member`; the ids of the jobs it held (sent to it, or chosen for it and not read yet)."""
        self.members.remove(member)
        self._chosen = {seq: owner for seq, owner in self._chosen.items() if owner is not member}
        return list(dict.fromkeys(member.pending[seq] for seq in sorted(member.pending)))

    def take(self, member: Member, event: Event, wants: bool) -> bool:
        """Whether `member` sends `event`, the next its subscription yielded (`wants`: it passes its filters)."""
        member.read = event.seq
        if not wants:
            return False
        job_id = event.context.job_id
        if event.topic == JOB_READY and job_id is not None:
            owner = self._chosen.get(event.seq)
            if owner is None:
                owner = member
                for other in self.members:
                    if other is not member and other.read < event.seq \
                            and len(other.pending) < len(owner.pending) and other.wanted(event):
                        owner = other
                owner.pending[event.seq] = job_id
                if len(self.members) > 1:
                    self._chosen[event.seq] = owner
                    if len(self._chosen) > self._prune_at:
                        self._prune()
            if owner is not member:
                return False
        member.sent = event.seq
        return True

    def ack(self, member: Member, seq: int) -> int | None:
        """`member` handled everything it was sent up to `seq`: where to move the agent's cursor, or None."""
        if seq > member.acked:
            member.acked = seq
            for done in [s for s in member.pending if s <= seq]:
                del member.pending[done]
        cursor = self.cursor()
        if cursor <= self._saved:
            return None
        self._saved = cursor
        return cursor

    def cursor(self) -> int:
        """The highest seq such that every member has handled every event up to it that was its to handle.

        A member that acked everything it was sent has handled all it read (the rest was not its),
        so an idle worker does not hold the cursor back.
        """
        cursor = min(max(m.read, m.acked) if m.sent <= m.acked else m.acked for m in self.members)
        held = [min(m.pending) - 1 for m in self.members if m.pending]
        return min(cursor, *held) if held else cursor

    def _prune(self) -> None:
        passed = min(m.read for m in self.members)
        self._chosen = {seq: owner for seq, owner in self._chosen.items() if seq > passed}
        # A socket that stopped reading keeps its choices alive: prune again only once they have doubled.
        self._prune_at = max(_PRUNE_AT, 2 * len(self._chosen))


class AgentGroups:
    """The agent groups of one server process, by cursor name; a group ends with its last socket."""

    def __init__(self) -> None:
        self._groups: dict[str, AgentGroup] = {}
        self.closing = False
        """Set when the server closes the sockets itself (shutdown): nothing is announced again then."""

    def get(self, name: str) -> tuple[AgentGroup, bool]:
        """The group named `name`, and whether it is new (no socket of it was open here)."""
        group = self._groups.get(name)
        if group is not None:
            return group, False
        group = self._groups[name] = AgentGroup(name)
        return group, True

    def leave(self, group: AgentGroup, member: Member) -> list[str]:
        """Remove `member`; the jobs it held that the sockets still open must be told of again.

        None when it was the last socket: the agent's cursor is still before every job it held,
        so whichever socket comes next starts before them (or, resuming past them, has them
        announced again when its group forms).
        """
        held = group.leave(member)
        if not group.members:
            if self._groups.get(group.name) is group:
                del self._groups[group.name]
            return []
        return held
