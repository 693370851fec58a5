"""Keyword rules on the project's texts (RULES.md `urbanisme`, `archivage`, `depenses_ineligibles`).

Matching (REFERENCE.md §6): words are compared lower-cased and without accents, on word boundaries;
acronyms (ADS, SAE, ETP…) only in capitals on the raw text, so "ads" inside a word or "sae" in
lower case never match. A keyword only ever flags for review. Documented false positives are
removed before reporting: "recrutement d'un prestataire" is not a staff cost, "formation des
agents" is an eligible theme, "poste de travail" is a computer (equipment), not a job.
"""

from __future__ import annotations

import codecs
import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator

from ahocorasick_rs import AhoCorasick

from .engine import A_VERIFIER, ELIGIBLE, Context, Finding, rule
from .mapping import TEXT_ROLES, Dossier


@functools.lru_cache(maxsize=8192)
def _fold(char: str) -> str:
    if char in "’‘`´":
        return "'"
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)).lower()
    return base if len(base) == 1 else char.lower() if len(char.lower()) == 1 else char


_FOLDED: dict[int, str] = {}  # code point → its folded character, for every character met so far


# Each cp1252 character (Latin-1 with ’ œ € … — what French text is typed in) folded: such a text is
# folded byte by byte by the charmap codec, in C; str.translate goes through a dict character by character.
_CP1252_FOLDED = "".join(_fold(bytes([byte]).decode("cp1252", errors="replace")) for byte in range(256))


def normalize(text: str) -> str:
    """Lower case without accents, same length as `text` so match positions map back to the raw text."""
    if text.isascii():
        return text.lower()
    try:
        return codecs.charmap_decode(text.encode("cp1252"), "strict", _CP1252_FOLDED)[0]
    except UnicodeEncodeError:
        return _short(text) if len(text) <= SHORT else _normalize(text)


SHORT = 80  # characters: drop-down values and names, which repeat from dossier to dossier


@functools.lru_cache(maxsize=4096)
def _short(text: str) -> str:
    return _normalize(text)


def _normalize(text: str) -> str:
    for char in set(text):
        if ord(char) not in _FOLDED:
            _FOLDED[ord(char)] = _fold(char)
    return text.translate(_FOLDED)


def _alternation(parts: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile(r"\b(?:" + "|".join(parts) + r")\b") if parts else None


METACHARACTERS = set("\\.^$*+?{}[]|()")


def literal_prefix(pattern: str) -> str:
    """The characters every match of `pattern` starts with ('' when it may start with anything)."""
    prefix = ""
    for char in pattern:
        if char == "|":
            return ""  # an alternation at the top: no common start
        if char in METACHARACTERS:
            return prefix[:-1] if char in "?*{" else prefix  # the last literal is optional
        prefix += char
    return prefix


def _prefixes(parts: tuple[str, ...]) -> tuple[str, ...] | None:
    """Literal starts of `parts`: a text holding none of them cannot match; None when one part has none,
    or one that is not ASCII (see `_Scan.spans`)."""
    found = tuple(literal_prefix(part) for part in parts)
    return None if not all(found) or not all(p.isascii() for p in found) else found


class _Scan:
    """One alternation `\\b(?:…)\\b` and the literal starts of its parts.

    A match can only start where one of those starts occurs: the regex is tried at those few places,
    in order, skipping the ones inside a match already made — the matches of `finditer`, found from
    one search of every keyword list's starts at once (`_starts`) instead of the regex tried at every
    word of the text. The starts are looked for folded, in the folded text: an ASCII start ("ETP")
    occurs in a text only where its folded form ("etp") occurs in the folded text (folding maps each
    character to one, in place), so the places tried hold every match, and a few more at most."""

    __slots__ = ("pattern", "prefixes")

    def __init__(self, parts: tuple[str, ...]) -> None:
        self.pattern = _alternation(parts)
        self.prefixes = tuple(dict.fromkeys(_prefixes(parts) or ())) or None
        if self.prefixes:
            _SCANS.append(self)

    def spans(self, text: str, folded: str | None = None) -> list[tuple[int, int]]:
        """The matches of `finditer` in `text`; `folded` is `normalize(text)` when the caller has it
        (a normalized text is its own), so that a dossier's texts are searched once for every scan."""
        if self.pattern is None:
            return []
        if self.prefixes is None:
            return [m.span() for m in self.pattern.finditer(text)]
        starts = _starts(normalize(text) if folded is None else folded, len(_SCANS)).get(self)
        if not starts:
            return []
        spans: list[tuple[int, int]] = []
        end = 0
        for at in sorted(starts):
            if at >= end and (found := self.pattern.match(text, at)):
                spans.append(found.span())
                end = found.end()
        return spans

    def found_in(self, text: str, folded: str | None = None) -> bool:
        """Whether `spans` would find one match at least: the regex tried at the starts until one matches."""
        if self.pattern is None:
            return False
        if self.prefixes is None:
            return self.pattern.search(text) is not None
        starts = _starts(normalize(text) if folded is None else folded, len(_SCANS)).get(self) or ()
        return any(self.pattern.match(text, at) for at in starts)


_SCANS: list[_Scan] = []  # every scan with literal starts, in the order they were made


@functools.lru_cache(maxsize=1)
def _automaton(count: int) -> tuple[AhoCorasick, list[list[_Scan]]]:
    """An Aho-Corasick automaton of the folded literal starts of the first `count` scans, and each one's scans."""
    owners: dict[str, list[_Scan]] = {}
    for scan in _SCANS[:count]:
        for prefix in dict.fromkeys(map(normalize, scan.prefixes or ())):
            owners.setdefault(prefix, []).append(scan)
    return AhoCorasick(list(owners)), list(owners.values())


# A dossier's folded text is read by every keyword list one after the other: it is searched once.
@functools.lru_cache(maxsize=2)
def _starts(folded: str, count: int) -> dict[_Scan, list[int]]:
    """Scan → where its folded literal starts occur in `folded` (overlapping occurrences included), for
    the first `count` scans: one pass over the text for all of them."""
    automaton, owners = _automaton(count)
    found: dict[_Scan, list[int]] = {}
    for index, start, _end in automaton.find_matches_as_indexes(folded, overlapping=True):
        for scan in owners[index]:
            found.setdefault(scan, []).append(start)
    return found


class Family:
    """A list of keywords: accent-free lower-case regexes, capital acronyms, false positives.

    `weak` acronyms and `weak_words` only count when the text also matches `context`
    (SVE and DIA are used for other procedures than urbanism).
    """

    def __init__(self, *, words: tuple[str, ...], acronyms: tuple[str, ...] = (),
                 false_positives: tuple[str, ...] = (), weak: tuple[str, ...] = (),
                 weak_words: tuple[str, ...] = (), context: str | None = None) -> None:
        self.words = _Scan(words)
        self.acronyms = _Scan(acronyms)
        self.false_positives = _Scan(false_positives)
        self.weak = _Scan(weak)
        self.weak_words = _Scan(weak_words)
        self.context = re.compile(context) if context else None
        scans = (self.words, self.acronyms, self.weak, self.weak_words)
        # When each scan has literal starts, a text holding none of them has no match: most families, most texts.
        self._starting = frozenset(scans) if all(s.prefixes or s.pattern is None for s in scans) else None

    def matches(self, raw: str, normalized: str) -> Iterator[tuple[int, int]]:
        """(start, end) of every match in `raw`, false positives and unsupported weak terms left out."""
        if self._starting is not None and self._starting.isdisjoint(_starts(normalized, len(_SCANS))):
            return
        spans = self.words.spans(normalized, normalized) + self.acronyms.spans(raw, normalized)
        weak = self.weak.spans(raw, normalized) + self.weak_words.spans(normalized, normalized)
        if weak and (self.context is None or self.context.search(normalized)):
            spans += weak
        if not spans:
            return
        false = self.false_positives.spans(normalized, normalized)
        for start, end in sorted(spans):
            if not false or not any(fs <= start and end <= fe for fs, fe in false):
                yield start, end

    def found_in(self, raw: str, normalized: str) -> bool:
        """Whether the text holds one match at least (no snippet made)."""
        if self.false_positives.pattern is None and self.weak.pattern is None and self.weak_words.pattern is None:
            return self.words.found_in(normalized, normalized) or self.acronyms.found_in(raw, normalized)
        return next(self.matches(raw, normalized), None) is not None


STAFF = Family(  # E1: frais de personnel
    words=(r"recrut(?:er|ement|ements)", r"embauch\w*", r"salaires?", r"remunerations?", r"masse salariale",
           r"charges de personnel", r"frais de personnel", r"depenses de personnel", r"chapitre 012",
           r"equivalents? temps plein", r"contrats? de projet", r"vacataires?",
           r"postes? de (?:charge|chef|agent|technicien|conseiller)\w*", r"creations? de postes?",
           r"valorisation du temps (?:agent|passe)\w*"),
    acronyms=("ETP", "CDD"),
    false_positives=(r"recrut(?:er|ement) (?:d'un|du|des|de) prestataires?", r"formations? des agents"),
)
EQUIPMENT = Family(  # E2: achat de matériel informatique
    words=(r"materiels? informatiques?", r"equipements? informatiques?", r"achats? de materiels?",
           r"ordinateurs?", r"pc portables?", r"postes? de travail", r"tablettes?", r"smartphones?",
           r"telephones?", r"ecrans?", r"imprimantes?", r"copieurs?", r"serveurs?", r"baies?", r"switch",
           r"routeurs?", r"bornes? wifi", r"videoprojecteurs?", r"visioconference (?:materiel|salle)",
           r"peripheriques", r"onduleurs?"),
    acronyms=("NAS", "TBI"),
    # "serveur vocal interactif" is a service the call cites as an example, not a purchase; so is the
    # telephone as a channel of the relation with users ("par téléphone", "accueil au téléphone").
    false_positives=(r"serveurs? vocaux?(?: interactifs?)?", r"serveurs? vocal(?: interactif)?",
                     r"(?:par|au|du) telephone"),
)
RECURRING = Family(  # E2 sub-flag: recurring operating costs
    words=(r"abonnements?", r"maintenance annuelle", r"hebergement (?:annuel|mensuel)",
           r"licences? annuelles?", r"location"),
)
URBANISM = Family(  # E3
    words=(r"droit des sols", r"autorisations? d'urbanisme", r"permis de construire", r"permis d'amenager",
           r"declarations? prealables?", r"certificats? d'urbanisme", r"declarations? d'intention d'aliener",
           r"instruction (?:dematerialisee|des dossiers d'urbanisme)", r"gnau",
           r"guichet numerique des autorisations d'urbanisme", r"plat'?au", r"demat[ .-]?ads",
           r"cart@ds", r"netads", r"openads", r"oxalis", r"r'ads"),
    acronyms=("ADS",),
    weak=("SVE", "DIA"),
    weak_words=(r"saisine par voie electronique",),
    context=r"urbanisme",
)
ARCHIVING = Family(  # E4
    words=(r"archivage(?: electronique| numerique)?", r"archives (?:departementales|communales|municipales)",
           r"systeme d'archivage electronique", r"as@lae", r"vitam", r"numerisation des archives",
           r"records management", r"versements? (?:aux|d'|des) archives"),
    # "versement" alone is mostly the payment of the grant: only "versement aux archives" counts.
    acronyms=("SAE",),
)


Text = tuple[str, str]  # (raw, normalized)
SEPARATOR = "\x00"  # between the texts of a dossier: not a word character, never typed in a form


def project_texts(d: Dossier) -> list[Text]:
    """The free texts the keyword rules read (title, descriptions, expense descriptions), normalized once."""
    cached: list[Text] | None = d.cache.get("texts")
    if cached is None:
        raw = [d.text(role) for role in TEXT_ROLES]
        raw += [row.text("depense_description") for row in d.rows("depenses")]
        # One string per dossier: each keyword family then runs its regexes once, not once per champ.
        joined = SEPARATOR.join(t.replace(SEPARATOR, " ") for t in raw if t)
        cached = d.cache["texts"] = [(joined, normalize(joined))] if joined else []
    return cached


def snippet(text: str, start: int, end: int, width: int = 35) -> str:
    """The matched words with some context, on one line."""
    segment_start = text.rfind(SEPARATOR, 0, start) + 1
    segment_end = text.find(SEPARATOR, end) % (len(text) + 1)
    left = max(segment_start, start - width)
    right = min(segment_end, end + width)
    body = " ".join(text[left:right].split())
    return ("…" if left > segment_start else "") + body + ("…" if right < segment_end else "")


def _first(family: Family, texts: Iterable[Text], limit: int) -> Iterator[tuple[str, str, int, int]]:
    """(normalized word, text, start, end) of the first `limit` distinct words matched, in text order."""
    seen: set[str] = set()
    for text, normalized in texts:
        for start, end in family.matches(text, normalized):
            if len(seen) >= limit:
                return
            word = normalized[start:end]
            if word not in seen:
                seen.add(word)
                yield word, text, start, end


def hits(family: Family, texts: Iterable[Text], limit: int = 3) -> list[tuple[str, str]]:
    """Distinct matched words (normalized) with the word as written and its context, at most `limit`."""
    return [(word, f"« {text[start:end]} » ({snippet(text, start, end)})")
            for word, text, start, end in _first(family, texts, limit)]


def matched_words(family: Family, texts: Iterable[Text], limit: int = 3) -> list[str]:
    """The distinct matched words (normalized) of `hits`, without building their contexts."""
    return [word for word, *_ in _first(family, texts, limit)]


def describe(matches: list[tuple[str, str]]) -> str:
    return " ; ".join(context for _, context in matches)


@rule("urbanisme", order=70, title="Urbanisme (exclu)", label="urbanisme (Démat.ADS)",
      family=(A_VERIFIER,))
def urbanisme(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """Texts about dematerialising urbanism authorisations (ADS, permis de construire…): excluded."""
    found = hits(URBANISM, project_texts(d))
    if found:
        yield Finding("urbanisme", A_VERIFIER, "Le projet semble porter sur les autorisations d'urbanisme, exclues "
                      f"de cet appel (programme Démat.ADS) : {describe(found)}.")


@rule("archivage", order=80, title="Archivage (axe 2)", label="archivage (Axe 2)",
      family=(A_VERIFIER,))
def archivage(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """Texts about departmental or communal archiving: such projects belong to Axe 2."""
    found = hits(ARCHIVING, project_texts(d))
    if found:
        yield Finding("archivage", A_VERIFIER, "Le projet semble porter sur l'archivage, qui relève de l'Axe 2 : "
                      f"{describe(found)}.")


@rule("depenses_ineligibles")
def depenses_mots_cles(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """Texts mentioning staff costs or equipment purchases (review); recurring costs as information."""
    texts = project_texts(d)
    if found := hits(STAFF, texts):
        yield Finding("depenses_ineligibles", A_VERIFIER,
                      f"Le texte évoque des frais de personnel, non finançables : {describe(found)}.")
    if found := hits(EQUIPMENT, texts):
        yield Finding("depenses_ineligibles", A_VERIFIER,
                      f"Le texte évoque un achat de matériel informatique, non finançable : {describe(found)}.")
    if found := hits(RECURRING, texts):
        yield Finding("depenses_ineligibles", ELIGIBLE, "Information : le texte évoque des coûts de fonctionnement "
                      f"récurrents, à examiner : {describe(found)}.")
