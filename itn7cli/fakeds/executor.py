"""The executor of warm mode: graphql-core's, answering a `Dossier` it completed before from the request's
`RenderCache` (renders.py). Needs graphql-core 3.3 (`Executor`); imported only when warm mode is on."""

from __future__ import annotations

from typing import Any

from graphql import Executor, GraphQLObjectType, GraphQLResolveInfo
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path

from .renders import CACHED_TYPE, RenderCache


class CachingExecutor(Executor):
    """graphql-core's executor, answering the objects of `CACHED_TYPE` from the request's `RenderCache`.

    Overrides a method graphql-core documents as private (3.3: `Executor.complete_object_value`):
    tests/test_fakeds.py fails if the hook stops being called.
    """

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        cache: RenderCache | None = getattr(self.context_value, "renders", None)
        key = None
        if cache is not None and return_type.name == CACHED_TYPE:
            key = cache.key(self, field_details_list, result)
        if cache is None or key is None:
            return super().complete_object_value(return_type, field_details_list, info, path, result, position_context)
        hit = cache.get(key)
        if hit is not None:
            return hit
        errors = len(self.collected_errors.errors)
        generation, signed_at = cache.dataset.generation, cache.storage.now()
        value = super().complete_object_value(return_type, field_details_list, info, path, result, position_context)
        if not self.is_awaitable(value) and len(self.collected_errors.errors) == errors:
            cache.put(key, value, generation, signed_at)
        return value


__all__ = ["CachingExecutor"]
