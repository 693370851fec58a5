"""What a GraphQL answer of DS means: data to keep, dossiers DS could not serialise, fields hidden from
the token, or an error to raise (which ones are worth another try, which say the token is wrong)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import msgspec

from ..errors import ApiError, AuthError

# Codes of errors that leave the rest of the answer usable: DS nulls the one dossier it cannot
# serialise (`invalid_null`), or one field the token may not see (`unauthorized` below a dossier).
BAD_DATA = "invalid_null"


class NotFoundError(ApiError):
    """The API says the object does not exist or is not visible (code `not_found`)."""


class PageError(ApiError):
    """One request keeps failing the same way (a 30 s `timeout` with partial data, a repeated 500): the
    answer depends on what is asked, so asking for less may isolate the dossier at fault."""


class TransientError(Exception):
    """A failure worth retrying (5xx, 429, network, partial data); never leaves the `api` package.

    `wait` is the server's own delay (a 429's window reset); `page` marks failures that depend on
    the request itself (timeout, 500), which a page reader answers by asking for fewer dossiers."""

    def __init__(self, reason: str, wait: float | None = None, *, page: bool = False) -> None:
        super().__init__(reason)
        self.wait = wait
        self.page = page


class _Envelope(msgspec.Struct):
    data: msgspec.Raw = msgspec.Raw(b"null")
    errors: list[Any] | None = None


@dataclass
class Answer:
    """A GraphQL answer kept although it carries errors: its `data` as DS sent it (`raw`, decoded on first
    use; None when DS nulled the root), the `bad` errors (dossiers DS could not serialise, by path) and
    `warnings` (fields hidden from the token)."""

    raw: msgspec.Raw | None
    bad: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @cached_property
    def data(self) -> dict[str, Any] | None:
        if self.raw is None:
            return None
        data = msgspec.json.decode(self.raw)
        return data if isinstance(data, dict) else None


def read_answer(status: int, content: bytes, partial: bool) -> Answer:
    """The `Answer` of a response that is not a 429 nor a 5xx, or the error it stands for."""
    try:
        envelope = msgspec.json.decode(content, type=_Envelope)
    except msgspec.ValidationError:
        raise TransientError(f"{status} réponse inattendue") from None
    except msgspec.DecodeError:
        if status >= 400:
            raise ApiError(f"L'API a répondu {status} sans contenu lisible.") from None
        raise TransientError(f"{status} non-JSON") from None
    errors = [e for e in envelope.errors or () if isinstance(e, dict)]
    if status >= 400:
        messages = "; ".join(str(e.get("message", "")) for e in errors)
        raise auth_error(status, messages) or ApiError(f"L'API a refusé la requête ({status}) : {messages}")
    # A raw value starts at its first character; an object is all `data` can usefully be.
    answer = Answer(envelope.data if memoryview(envelope.data)[:1] == b"{" else None)
    fatal = []
    for error in errors:
        code = (error.get("extensions") or {}).get("code")
        if code == BAD_DATA and partial:
            answer.bad.append(error)
        elif code in ("unauthorized", "not_found") and _below_dossier(error.get("path")):
            # DS types/dossier_type.rb `self.authorized?`: a linked object of another démarche is
            # hidden from this token; the dossier itself is whole.
            answer.warnings.append(f"{'.'.join(str(p) for p in error['path'])} : {error.get('message')}")
        else:
            fatal.append(error)
    if fatal:
        _raise_for_errors(fatal)
    if answer.raw is None and not answer.bad:
        raise TransientError("réponse sans données")
    return answer


def auth_error(status: int, message: str) -> AuthError | None:
    lowered = message.lower()
    if status == 401 or "token expired" in lowered:
        return AuthError("Jeton d'API expiré : créez-en un nouveau depuis « Mon profil » sur Démarche Numérique "
                         "puis mettez à jour DS_API_TOKEN.")
    if "forbidden network" in lowered:
        return AuthError("Jeton d'API refusé depuis ce réseau : ajoutez l'adresse IP de ce poste aux réseaux "
                         "autorisés du jeton (« Mon profil » > jetons d'API).")
    if status == 403 or "only persisted queries" in lowered:
        return AuthError("Jeton d'API invalide ou absent : vérifiez DS_API_TOKEN (jeton révoqué, mal copié ?).")
    return None


def _raise_for_errors(errors: list[dict[str, Any]]) -> None:
    messages = "; ".join(str(e.get("message", "")) for e in errors)
    codes = {(e.get("extensions") or {}).get("code") for e in errors}
    if "timeout" in codes or "internal_server_error" in codes:
        # Partial data: never keep it, ask again (for less, if it keeps failing).
        raise TransientError("données partielles", page=True)
    if "unauthorized" in codes and "hidden due to permissions" in messages:
        raise AuthError("Ce jeton n'a pas accès à la démarche demandée : vérifiez le numéro de démarche "
                        "(ITN7_DEMARCHE_*) ou créez un jeton couvrant cette démarche.")
    auth = auth_error(200, messages) if codes & {"unauthorized", "forbidden"} else None
    if auth:
        raise auth
    if "not_found" in codes:
        raise NotFoundError(f"Introuvable : {messages}")
    raise ApiError(f"Erreur de l'API : {messages}")


def _below_dossier(path: Any) -> bool:
    """Whether an error's path goes below one dossier (a champ, a linked object), not to the démarche."""
    if not isinstance(path, list) or not path:
        return False
    if "nodes" in path:
        return len(path) > path.index("nodes") + 2
    return path[0] == "dossier" and len(path) > 1
