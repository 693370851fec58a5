"""An opt-in cache of completed `Dossier` objects, so that the fake's CPU stays out of client benchmarks.

graphql-core spends nearly all of a dossier page's time completing values (about a thousand fields a
dossier, ≈ 0.4 s of CPU a page of 100). The real DS does that work on other machines; a benchmark
sharing its cores with the fake must not pay for it. With `FakeDS(warm=True)` (`--warm`) the engine
executes with `executor.CachingExecutor`, which answers a `Dossier` it completed before from this cache, and
`warm_up` fills the cache with the sync's own dossier pages before the server answers anyone. By
default the cache is off: every test exercises graphql-core's real execution path.

A hit is exactly what a fresh execution would give: the key is the selection (AST nodes, stable since
`DocumentCache` prepares each document once), the variables that selection reads, the token's spec,
the rendered dossier (a new object after every change of it) and the dataset's generation (bumped by
every change: any change empties the cache). A completion that raised or recorded an error is never
kept, and no entry outlives a share of the signed URLs' life (`max_age`, on the storage's clock).
Cached values are shared between answers: nothing may change an answer's data in place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import FieldNode, FragmentDefinitionNode
from graphql.language import FragmentSpreadNode, VariableNode, Visitor, visit

from .control import Stats
from .dataset import Dataset
from .files import Storage

if TYPE_CHECKING:
    from graphql import Executor
    from graphql.execution.collect_fields import FieldDetailsList

    from .server import FakeDS

CACHED_TYPE = "Dossier"
URL_LIFE_SHARE = 0.25  # an entry serves signed URLs with at least three quarters of their life left


@dataclass(frozen=True)
class _Key:
    value: tuple[Any, ...]
    pins: tuple[Any, ...]  # the objects whose id() is in `value`, kept alive with the entry so no id is reused


@dataclass
class _Entry:
    value: Any
    signed_at: float
    pins: tuple[Any, ...]


class _Refs(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.variables: set[str] = set()
        self.fragments: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.variables.add(node.name.value)

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
        self.fragments.add(node.name.value)


def variables_read(nodes: Iterable[FieldNode], fragments: dict[str, FragmentDefinitionNode]) -> tuple[str, ...]:
    """The variables a selection reads, through the fragments it spreads too."""
    refs = _Refs()
    todo: list[Any] = list(nodes)
    done: set[str] = set()
    while todo:
        visit(todo.pop(), refs)
        for name in refs.fragments - done:
            done.add(name)
            if name in fragments:
                todo.append(fragments[name])
    return tuple(sorted(refs.variables))


class RenderCache:
    """Completed Dossier objects of one dataset generation; thread-safe, bounded to `size` entries."""

    def __init__(self, dataset: Dataset, storage: Storage, max_age: Callable[[], float], size: int = 50_000) -> None:
        self.dataset = dataset
        self.storage = storage
        self.max_age = max_age
        self.size = size
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._generation = dataset.generation
        self._items: dict[tuple[Any, ...], _Entry] = {}
        self._reads: dict[tuple[int, ...], tuple[tuple[FieldNode, ...], tuple[str, ...]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def key(self, executor: Executor, field_details_list: FieldDetailsList, result: Any) -> _Key | None:
        """The key of this completion and the objects it names by id, or None if it is not one to cache."""
        if any(details.fragment_variable_values is not None for details in field_details_list):
            return None
        nodes = tuple(details.node for details in field_details_list)
        ids = tuple(map(id, nodes))
        with self._lock:
            known = self._reads.get(ids)
            if known is None:
                known = self._reads[ids] = (nodes, variables_read(nodes, executor.fragment_definitions))
        coerced = executor.variable_values.coerced
        values = tuple(repr(coerced.get(name)) for name in known[1])
        ctx = executor.context_value
        return _Key((ids, values, id(ctx.token), ctx.named, id(result)), (nodes, ctx.token, result))

    def get(self, key: _Key) -> Any:
        """The cached value, or None."""
        with self._lock:
            self._check_generation()
            entry = self._items.get(key.value)
            fresh = entry is not None and self.storage.fresh(entry.signed_at, self.max_age())
            if fresh:
                self.hits += 1
            else:
                self.misses += 1
        return entry.value if entry is not None and fresh else None

    def put(self, key: _Key, value: Any, generation: int, signed_at: float) -> None:
        """Keep a value completed without error while the dataset was at `generation`."""
        with self._lock:
            self._check_generation()
            if generation != self._generation:
                return  # the dataset changed during the completion
            if len(self._items) >= self.size:
                del self._items[next(iter(self._items))]
            self._items[key.value] = _Entry(value, signed_at, key.pins)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._items.clear()

    def _check_generation(self) -> None:
        generation = self.dataset.generation
        if generation != self._generation:
            self._items.clear()
            self._generation = generation


def warm_up(app: FakeDS) -> tuple[int, float]:
    """Completes the sync's dossier pages once over every dossier, for every usable token.

    The sync's own document and variables (itn7cli/api/client.py `dossier_pages`); the page a dossier lands on
    does not matter, since the key holds the node's selection, not the page. Returns the dossiers
    completed and the seconds it took.
    """
    from itn7cli import queries
    from itn7cli.sync import EPOCH

    from .engine import run

    prepared = app.documents.get(queries.text("getDossiers"))
    started, completed = time.perf_counter(), 0
    for spec in {id(s): s for s in app.tokens.values() if not (s.expired or s.forbidden_network)}.values():
        ctx = app.context(spec, prepared, Stats())
        for number in app.dataset.demarches:
            after = None
            while True:
                variables = {"number": number, "updatedSince": EPOCH, "after": after, "first": 100}
                data = run(prepared, ctx, variables, "getDossiers").get("data") or {}
                page = (data.get("demarche") or {}).get("dossiers")
                if not page:
                    break
                completed += sum(1 for node in page["nodes"] if node)
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
    return completed, time.perf_counter() - started


__all__ = ["CACHED_TYPE", "RenderCache", "warm_up"]
