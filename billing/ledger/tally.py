"""Rate windows across store switches: what this process has counted in each live minute, and how much of that
each store already holds, so a store taking over is handed the rest.

Budgets are caught up from the usage records when a store takes over (admission.py); a rate window cannot
be: it is a minute long and its records are still on their way. So every process keeps its own share of each
live window, and carries into the store it switches to — the database when Redis goes away, Redis when it
answers again, a Redis that restarted empty (a new epoch) — what that store is missing of it. Every process
carries its own share, so the store ends up with the cluster's count.

A store is named by an epoch: "database", or "redis:<epoch>" (stores.EPOCH_KEY). Pure bookkeeping, no I/O.
"""

from billing.ledger.counters import Counter

# Windows are a minute long; a stream settles into its window up to an hour later (Counter.ttl_s), but what it
# adds after its minute no longer matters to any limit.
FORGET_AFTER_S = 120.0


class WindowTally:
    def __init__(self) -> None:
        self._windows: dict[str, Counter] = {}  # counter key -> a counter of that window (key, minute, ttl)
        self._mine: dict[str, int] = {}  # counter key -> what this process has counted in it
        self._held: dict[str, dict[str, int]] = {}  # store epoch -> counter key -> how much of _mine it has
        self._serving = ""
        self._unsynced: set[str] = set()  # keys the serving store may be missing some of
        self._forget_at = 0.0

    @property
    def is_counting(self) -> bool:
        """Has this process counted in a window it still remembers?"""
        return bool(self._mine)

    def owed(self, epoch: str, now: float) -> list[tuple[Counter, int]]:
        """What the store `epoch` is missing of this process's counts, taken as carried: call `returned` if
        the carry does not reach it. After a switch, every live window; otherwise only windows counted
        elsewhere since (a late settle in another store), so a steady state costs nothing."""
        self._forget_before(now)
        if epoch != self._serving:
            self._serving = epoch
            self._unsynced = set(self._mine)
        if not self._unsynced:
            return []
        held = self._held.setdefault(epoch, {})
        owed = []
        for key in self._unsynced:
            delta = self._mine[key] - held.get(key, 0)
            if delta:
                owed.append((self._windows[key], delta))
                held[key] = self._mine[key]  # taken now: a concurrent call must not carry it twice
        self._unsynced = set()
        return owed

    def returned(self, epoch: str, owed: list[tuple[Counter, int]]) -> None:
        """A carry from `owed` that failed: the store did not get it."""
        held = self._held.setdefault(epoch, {})
        for counter, delta in owed:
            held[counter.key] = held.get(counter.key, 0) - delta
            self._unsynced.add(counter.key)

    def counted(self, epoch: str | None, counters: list[Counter], amounts: list[int]) -> None:
        """This process counted `amounts` in `epoch`'s store (None: in none, the store was lost)."""
        for counter, amount in zip(counters, amounts, strict=True):
            if not counter.is_rate or not amount:
                continue
            key = counter.key
            if key not in self._mine:
                self._windows[key] = counter
                self._mine[key] = 0
            self._mine[key] += amount
            if epoch is not None:
                held = self._held.setdefault(epoch, {})
                held[key] = held.get(key, 0) + amount
            if epoch != self._serving:
                self._unsynced.add(key)

    def _forget_before(self, now: float) -> None:
        if now < self._forget_at:
            return
        self._forget_at = now + 30
        stale = [key for key, counter in self._windows.items() if counter.window_end + FORGET_AFTER_S < now]
        for key in stale:
            del self._windows[key], self._mine[key]
            for held in self._held.values():
                held.pop(key, None)
            self._unsynced.discard(key)
