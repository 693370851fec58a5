"""GraphQL execution over the SDL subset, with resolvers on the in-memory dataset."""

from __future__ import annotations

import base64
import binascii
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute,
    parse,
    validate,
)
from graphql.language import FragmentDefinitionNode, InlineFragmentNode, Visitor, visit

from . import mutations
from . import render as views
from .control import Stats, TokenSpec
from .dataset import PARIS, Dataset, Demarche, Dossier, paris
from .files import FileSpec

if TYPE_CHECKING:
    from .renders import RenderCache

MAX_PAGE = 100
# Champ kinds whose precise GraphQL type is returned only when the document names it.
DOWNGRADED = {
    "DropDownList": ("DropDownListChamp", "TextChamp"),
    "YesNo": ("YesNoChamp", "CheckboxChamp"),
    "Datetime": ("DatetimeChamp", "DateChamp"),
    "HeaderSection": ("HeaderSectionChamp", "TextChamp"),
    "Explication": ("ExplicationChamp", "TextChamp"),
    "Address": ("AddressChamp", "TextChamp"),
    "Commune": ("CommuneChamp", "TextChamp"),
    "Departement": ("DepartementChamp", "TextChamp"),
    "Region": ("RegionChamp", "TextChamp"),
    "Pays": ("PaysChamp", "TextChamp"),
}
ALWAYS = {"Email": "TextChamp", "Phone": "TextChamp", "Textarea": "TextChamp"}
READ_ONLY = "Le jeton utilisé est configuré seulement en lecture"
NO_ACCESS = "L’instructeur n’a pas les droits d’accès à ce dossier"
VALUE_KEYS = {
    "Text": ("text",),
    "Textarea": ("textarea", "text"),
    "Email": ("text",),
    "Phone": ("text",),
    "DropDownList": ("dropDownList",),
    "MultipleDropDownList": ("multipleDropDownList",),
    "DecimalNumber": ("decimalNumber",),
    "IntegerNumber": ("integerNumber",),
    "Checkbox": ("checkbox",),
    "YesNo": ("yesNo",),
    "Date": ("date",),
    "Datetime": ("datetime",),
    "Repetition": ("repetition",),
}


def api_error(message: str, code: str) -> GraphQLError:
    """A GraphQL error with extensions.code, as the real server formats them."""
    return GraphQLError(message, extensions={"code": code})


@dataclass
class RequestContext:
    """What the resolvers of one request need."""

    dataset: Dataset
    token: TokenSpec
    named: frozenset[str]
    sign: Callable[[FileSpec], str]
    stats: Stats
    renders: RenderCache | None = None  # completed dossiers to reuse (`FakeDS(warm=True)`), else none


@dataclass
class Prepared:
    """A parsed and validated document, with the type names its fragments mention."""

    document: DocumentNode | None
    errors: list[GraphQLError]
    named: frozenset[str]
    operations: dict[str | None, OperationType]
    syntax_error: bool = False


class _NamedTypes(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_inline_fragment(self, node: InlineFragmentNode, *_: Any) -> None:
        if node.type_condition:
            self.names.add(node.type_condition.name.value)

    def enter_fragment_definition(self, node: FragmentDefinitionNode, *_: Any) -> None:
        self.names.add(node.type_condition.name.value)


class DocumentCache:
    """Parsed+validated documents by query text (bounded LRU)."""

    def __init__(self, schema: GraphQLSchema, size: int = 256) -> None:
        self.schema = schema
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Prepared] = OrderedDict()

    def get(self, query: str) -> Prepared:
        """The prepared document for `query`."""
        with self._lock:
            hit = self._items.get(query)
            if hit is not None:
                self._items.move_to_end(query)
                return hit
        prepared = self._prepare(query)
        with self._lock:
            self._items[query] = prepared
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return prepared

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse(query)
        except GraphQLSyntaxError as exc:
            err = GraphQLError(exc.message, extensions={"code": "graphql_parse_failed"})
            return Prepared(None, [err], frozenset(), {}, syntax_error=True)
        errors = validate(self.schema, document)
        visitor = _NamedTypes()
        visit(document, visitor)
        operations: dict[str | None, OperationType] = {}
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                operations[definition.name.value if definition.name else None] = definition.operation
        named = visitor.names
        if "IntrospectionQuery" in operations:
            named = {t for t in self.schema.type_map}
        return Prepared(document, list(errors), frozenset(named), operations)


def _ctx(info: Any) -> RequestContext:
    ctx: RequestContext = info.context
    return ctx


def parse_datetime(value: str | None, argument: str) -> datetime | None:
    """An ISO8601DateTime argument as an aware UTC datetime (naive values are Paris time)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise api_error(f"Argument '{argument}' has an invalid value ({value}).", "bad_request") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=PARIS)
    return parsed.astimezone(UTC)


def encode_cursor(ts: datetime, db_id: int) -> str:
    """Keyset cursor: base64("<UTC ts with microseconds>Z;<id>")."""
    return base64.b64encode(f"{ts.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}Z;{db_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (timestamp, id) of a cursor; accepts nanosecond cursors like the real server's."""
    try:
        ts_text, id_text = base64.b64decode(cursor.encode(), validate=False).decode().split(";")
        head, _, frac = ts_text.rstrip("Z").partition(".")
        ts = datetime.strptime(f"{head}.{(frac + '000000')[:6]}", "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
        return ts, int(id_text)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise api_error("Invalid cursor", "bad_request") from None


def _page(
    rows: list[tuple[datetime, int, Any]], first: int | None, after: str | None, last: int | None = None
) -> tuple[list[tuple[datetime, int, Any]], dict[str, Any]]:
    for name, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            raise api_error(f"Argument '{name}' on Field 'dossiers' has an invalid value", "bad_request")
    if first is not None and last is not None:  # DS cursor_connection.rb `ensure_valid_params`
        raise api_error("Arguments 'first' and 'last' are exclusive", "bad_request")
    asked = last if last is not None else first
    size = MAX_PAGE if asked is None else min(asked, MAX_PAGE)
    rows.sort(key=lambda r: (r[0], r[1]))
    if after is not None:
        key = decode_cursor(after)
        rows = [r for r in rows if (r[0], r[1]) > key]
    if last is not None:  # DS cursor_connection.rb: the last `last` rows; no next page, a previous one if any left
        page, has_next, has_previous = rows[len(rows) - size:] if size else [], False, len(rows) > size
    else:
        page = rows[: size + 1]
        has_next, has_previous = len(page) > size, after is not None
        page = page[:size]
    info = {
        "hasNextPage": has_next,
        "hasPreviousPage": has_previous,
        "startCursor": encode_cursor(page[0][0], page[0][1]) if page else None,
        "endCursor": encode_cursor(page[-1][0], page[-1][1]) if page else None,
    }
    return page, info


# ---------------------------------------------------------------- root fields
def resolve_demarche(_root: Any, info: Any, number: int) -> Demarche:
    ctx = _ctx(info)
    demarche = ctx.dataset.demarches.get(number)
    if demarche is None:
        raise api_error("Demarche not found", "not_found")
    if not ctx.token.covers(number):
        raise api_error("An object of type Demarche was hidden due to permissions", "unauthorized")
    return demarche


def resolve_demarche_descriptor(_root: Any, info: Any, demarche: dict[str, Any]) -> dict[str, Any]:
    # app/graphql/types/query_type.rb demarche_descriptor; duree_conservation_dossiers in demarche_descriptor_type.rb.
    number = demarche.get("number") or _decode_number(demarche.get("id") or "", "Procedure") or 0
    found = resolve_demarche(_root, info, number)
    return {"number": found.number, "dureeConservationDossiers": found.duree_conservation_dossiers}


def _visible_dossier(ctx: Any, number: int) -> Any:
    """The dossier the token may see, as the real API decides; call with the dataset's lock held."""
    ds = ctx.dataset
    d = ds.dossiers.get(number)
    if d is None or not d.visible:
        raise api_error("Dossier not found", "not_found")
    if not ctx.token.covers(ds.numbers[d.key]):
        raise api_error("An object of type Dossier was hidden due to permissions", "unauthorized")
    return d


def resolve_dossier(_root: Any, info: Any, number: int) -> dict[str, Any]:
    ctx = _ctx(info)
    ds = ctx.dataset
    with ds.lock:
        return ds.render(_visible_dossier(ctx, number))


# ---------------------------------------------------------------- Demarche
def resolve_dossiers(
    demarche: Demarche,
    info: Any,
    first: int | None = None,
    after: str | None = None,
    updatedSince: str | None = None,
    createdSince: str | None = None,
    state: str | None = None,
    archived: bool | None = None,
    last: int | None = None,
) -> dict[str, Any]:
    ds = _ctx(info).dataset
    updated = parse_datetime(updatedSince, "updatedSince")
    created = None if updated else parse_datetime(createdSince, "createdSince")
    with ds.lock:
        rows: list[tuple[datetime, int, Any]] = []
        for d in ds.dossiers.values():
            if d.key != demarche.key or not d.visible:
                continue
            if (state is not None and d.state != state) or (archived is not None and d.archived != archived):
                continue
            if updated is not None:
                if d.updated_at >= updated:
                    rows.append((d.updated_at, d.db_id, d))
            elif created is None or d.depose_at >= created:
                rows.append((d.depose_at, d.db_id, d))
        page, page_info = _page(rows, first, after, last)
        nodes = [ds.render(r[2]) for r in page]
    return {"nodes": nodes, "pageInfo": page_info}


def _pending_node(d: Dossier) -> dict[str, Any]:
    reason = "instructeur_request" if d.hidden_by_administration_at else "user_request"
    return {
        "id": d.id,
        "number": d.number,
        "state": d.state,
        "reason": reason,
        "dateSupression": paris(d.pending_deletion_at),
    }


def resolve_pending(
    demarche: Demarche, info: Any, first: int | None = None, after: str | None = None, deletedSince: str | None = None
) -> dict[str, Any]:
    ds = _ctx(info).dataset
    since = parse_datetime(deletedSince, "deletedSince")
    with ds.lock:
        rows = []
        for d in ds.dossiers.values():
            at = d.pending_deletion_at
            if d.key == demarche.key and at is not None and (since is None or at >= since):
                rows.append((at, d.db_id, d))
        page, page_info = _page(rows, first, after)
        nodes = [_pending_node(r[2]) for r in page]
    return {"nodes": nodes, "pageInfo": page_info}


def resolve_deleted(
    demarche: Demarche, info: Any, first: int | None = None, after: str | None = None, deletedSince: str | None = None
) -> dict[str, Any]:
    ds = _ctx(info).dataset
    since = parse_datetime(deletedSince, "deletedSince")
    with ds.lock:
        rows = [
            (rec.deleted_at, rec.db_id, rec)
            for rec in ds.deleted[demarche.number]
            if since is None or rec.deleted_at >= since
        ]
        page, page_info = _page(rows, first, after)
    return {"nodes": [r[2].to_graphql() for r in page], "pageInfo": page_info}


def _demarche_field(name: str) -> Callable[..., Any]:
    def resolve(demarche: Demarche, info: Any, **kwargs: Any) -> Any:
        ds = _ctx(info).dataset
        if name == "id":
            return demarche.id
        if name in ("number", "title"):
            return getattr(demarche, name)
        if name == "state":
            return "publiee"
        if name in ("dateCreation", "dateDerniereModification"):
            return paris(demarche.created_at)
        if name == "description":
            return "Appel à projets France Relance – transformation numérique des collectivités territoriales."
        if name == "activeRevision":
            return views.revision_object(ds, demarche.revisions[-1])
        if name == "revisions":
            return [views.revision_object(ds, r) for r in demarche.revisions]
        if name == "groupeInstructeurs":
            closed = kwargs.get("closed")
            return [views.groupe_object(ds, g) for g in demarche.groupes if closed is None or g["closed"] == closed]
        raise KeyError(name)

    return resolve


# ---------------------------------------------------------------- Dossier, Champ, File
def _champ_list(name: str) -> Callable[..., Any]:
    def resolve(dossier: dict[str, Any], _info: Any, id: str | None = None) -> Any:
        champs = dossier[name]
        return champs if id is None else [c for c in champs if c["id"] == id]

    return resolve


def champ_type(value: dict[str, Any], info: Any, *_: Any) -> str:
    """The concrete Champ type, downgraded when the document does not name the precise one."""
    kind = value["_kind"]
    pair = DOWNGRADED.get(kind)
    if pair is not None:
        return pair[0] if pair[0] in _ctx(info).named else pair[1]
    return ALWAYS.get(kind) or f"{kind}Champ"


def demandeur_type(value: dict[str, Any], info: Any, *_: Any) -> str:
    """PersonneMoraleIncomplete only for documents that name it, as on the real server."""
    typename: str = value["__typename"]
    if typename == "PersonneMoraleIncomplete" and typename not in _ctx(info).named:
        return "PersonneMorale"
    return typename


def descriptor_type(value: dict[str, Any], *_: Any) -> str:
    """ChampDescriptor objects carry their __typename."""
    typename: str = value["__typename"]
    return typename


def resolve_linked_dossier(champ: dict[str, Any], info: Any) -> dict[str, Any] | None:
    """DossierLinkChamp.dossier loads the linked dossier from any démarche; one the token does not
    cover is hidden with an `unauthorized` error and a null field, the rest of the answer intact
    (DS app/graphql/types/champs/dossier_link_champ_type.rb, types/dossier_type.rb `self.authorized?`)."""
    ctx = _ctx(info)
    number = champ.get("linked")
    if number is None:
        return None
    with ctx.dataset.lock:
        return ctx.dataset.render(_visible_dossier(ctx, number))


FILE_FIELDS: dict[str, Callable[[FileSpec, RequestContext], Any]] = {
    "filename": lambda f, _c: f.filename,
    "contentType": lambda f, _c: f.content_type,
    "checksum": lambda f, c: c.dataset.content.checksum(f.key, f.size),
    "byteSizeBigInt": lambda f, _c: str(f.size),
    "url": lambda f, c: c.sign(f),
    "createdAt": lambda f, _c: f.created_at,
}


def _file_field(name: str) -> Callable[..., Any]:
    getter = FILE_FIELDS[name]

    def resolve(f: FileSpec, info: Any) -> Any:
        return getter(f, _ctx(info))

    return resolve


# ---------------------------------------------------------------- mutation
def resolve_modifier_annotations(_root: Any, info: Any, input: dict[str, Any]) -> dict[str, Any]:
    ctx = _ctx(info)
    ds = ctx.dataset
    ctx.stats.add("mutations")

    def failed(message: str) -> dict[str, Any]:
        return {"annotations": None, "errors": [{"message": message}]}

    if not ctx.token.write:
        return failed(READ_ONLY)
    number = _decode_number(input["dossierId"], "Dossier") or 0
    with ds.lock:
        d = _visible_dossier(ctx, number)
        instructeur = _decode_number(input["instructeurId"], "Instructeur")
        if instructeur is None or instructeur not in ds.groupe_instructeurs(number):
            return failed(NO_ACCESS)
        by_id = {desc.id: desc for desc in d.revision.annotations}
        changes = []
        for item in input["annotations"]:
            desc = by_id.get(item["id"])
            if desc is None:
                return failed(f"L’annotation « {item['id']} » n’existe pas sur ce dossier")
            given = {k: v for k, v in item["value"].items() if v is not None}
            if len(given) != 1:
                return failed("AnnotationValueInput : exactement une valeur doit être renseignée")
            key, value = next(iter(given.items()))
            if key not in VALUE_KEYS.get(desc.kind, ()):
                return failed(f"L’annotation « {desc.label} » n’est pas de type attendu ({key})")
            if desc.kind == "DropDownList" and value not in desc.options:
                return failed(f"L’annotation « {desc.label} » : « {value} » n’est pas une option valide")
            if key == "integerNumber":
                value = int(value)
            changes.append((desc.stable_id, value))
        for stable_id, value in changes:
            ds.set_annotation(number, stable_id, value)
        ctx.stats.add("mutations_applied")
        changed = {champ_id for champ_id, _ in changes}
        annotations = [
            c
            for c in ds.render(d)["annotations"]
            if int(base64.b64decode(c["champDescriptorId"]).decode().split("-")[1]) in changed
        ]
    return {"annotations": annotations, "errors": None}


def _decode_number(relay: str, kind: str) -> int | None:
    try:
        prefix, _, number = base64.b64decode(relay.encode()).decode().partition("-")
        return int(number) if prefix == kind else None
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None


# ---------------------------------------------------------------- schema
@cache
def schema() -> GraphQLSchema:
    """The executable schema: the SDL subset with this module's resolvers attached."""
    sdl = Path(__file__).with_name("schema.graphql").read_text(encoding="utf-8")
    s = build_schema(sdl)

    def obj(name: str) -> Any:
        return s.type_map[name]

    obj("Query").fields["demarche"].resolve = resolve_demarche
    obj("Query").fields["dossier"].resolve = resolve_dossier
    obj("Query").fields["demarcheDescriptor"].resolve = resolve_demarche_descriptor
    obj("Mutation").fields["dossierModifierAnnotations"].resolve = resolve_modifier_annotations
    for rule in mutations.MUTATIONS:  # the state mutations live in fakeds/mutations.py
        obj("Mutation").fields[rule.field].resolve = mutations.resolver(
            rule, ctx_of=_ctx, visible=_visible_dossier, decode=_decode_number)
    demarche = obj("Demarche")
    for name, fld in demarche.fields.items():
        fld.resolve = _demarche_field(name)
    demarche.fields["dossiers"].resolve = resolve_dossiers
    demarche.fields["pendingDeletedDossiers"].resolve = resolve_pending
    demarche.fields["deletedDossiers"].resolve = resolve_deleted
    obj("Dossier").fields["champs"].resolve = _champ_list("champs")
    obj("Dossier").fields["annotations"].resolve = _champ_list("annotations")
    for name, fld in obj("File").fields.items():
        fld.resolve = _file_field(name)
    obj("DossierLinkChamp").fields["dossier"].resolve = resolve_linked_dossier
    obj("CheckboxChamp").fields["value"].resolve = lambda c, _i: bool(c.get("value"))
    obj("Champ").resolve_type = champ_type
    obj("Demandeur").resolve_type = demandeur_type
    obj("ChampDescriptor").resolve_type = descriptor_type
    return s


def run(
    prepared: Prepared, ctx: RequestContext, variables: dict[str, Any] | None, operation_name: str | None
) -> dict[str, Any]:
    """Execute a prepared document; returns the JSON-ready response body."""
    if prepared.errors or prepared.document is None:
        return {"errors": [e.formatted for e in prepared.errors]}
    options: dict[str, Any] = {}
    if ctx.renders is not None:  # warm mode only: graphql-core 3.3
        from .executor import CachingExecutor

        options["executor_class"] = CachingExecutor
    result = execute(
        schema(), prepared.document, context_value=ctx, variable_values=variables, operation_name=operation_name,
        **options,
    )
    if not isinstance(result, ExecutionResult):  # resolvers are synchronous; never awaitable
        raise TypeError("unexpected awaitable result")
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [_format(e) for e in result.errors]
    body["data"] = result.data
    return body


def _format(error: GraphQLError) -> dict[str, Any]:
    out = dict(error.formatted)
    if error.message.startswith("Cannot return null for non-nullable field"):
        # DS app/graphql/api/v2/schema.rb `type_error`: bad data is `invalid_null`, nulled up to
        # the nearest nullable parent (a dossier's item in DossierConnection.nodes).
        out["extensions"] = {"code": "invalid_null"}
    elif not out.get("extensions"):
        original = error.original_error
        code = "internal_server_error" if original and not isinstance(original, GraphQLError) else "bad_request"
        out["extensions"] = {"code": code}
    return out


__all__ = ["DocumentCache", "Prepared", "RequestContext", "run", "schema"]
