"""The database's shape, declared once: tables, views and migrations, and how it is opened.

Every structural change is a new migration appended at the end of this file. The one definition
of a "live" dossier (synced, with data, not deleted or retired upstream) is `LIVE` here.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .. import private
from ..errors import StoreError

log = logging.getLogger(__name__)

# A dossier that DS still shows and whose data we hold; `d` is the dossiers table's alias.
LIVE = "d.deletion_state IS NULL AND d.raw IS NOT NULL"

migrations = Migrations("itn7")

# Bookkeeping columns: they say when and by which run a row was written (or erased), not what DS holds.
BOOKKEEPING = {"synced_at", "seen_run", "erased_at"}


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE demarches (
            number INTEGER PRIMARY KEY, key TEXT, id TEXT, title TEXT, state TEXT,
            date_creation TEXT, active_revision_id TEXT, synced_at TEXT
        );
        CREATE TABLE revisions (
            id TEXT PRIMARY KEY, demarche_number INTEGER REFERENCES demarches(number),
            date_creation TEXT, date_publication TEXT, is_active INTEGER
        );
        CREATE TABLE champ_descriptors (
            revision_id TEXT REFERENCES revisions(id), id TEXT, kind TEXT, parent_id TEXT,
            position INTEGER, type TEXT, label TEXT, description TEXT, required INTEGER,
            options TEXT, PRIMARY KEY (revision_id, id)
        );
        CREATE TABLE groupes_instructeurs (
            id TEXT PRIMARY KEY, demarche_number INTEGER REFERENCES demarches(number),
            number INTEGER, label TEXT, closed INTEGER
        );
        CREATE TABLE instructeurs (id TEXT PRIMARY KEY, email TEXT);
        CREATE TABLE groupe_instructeurs (
            groupe_id TEXT REFERENCES groupes_instructeurs(id), instructeur_id TEXT REFERENCES instructeurs(id),
            PRIMARY KEY (groupe_id, instructeur_id)
        );
        CREATE TABLE dossiers (
            number INTEGER PRIMARY KEY, id TEXT, demarche_number INTEGER REFERENCES demarches(number),
            state TEXT, archived INTEGER,
            date_depot TEXT, date_passage_en_construction TEXT, date_passage_en_instruction TEXT,
            date_traitement TEXT, date_derniere_modification TEXT, date_derniere_modification_champs TEXT,
            date_derniere_modification_annotations TEXT, date_expiration TEXT,
            date_suppression_par_usager TEXT, date_suppression_par_administration TEXT,
            motivation TEXT, revision_id TEXT, groupe_instructeur_id TEXT, groupe_instructeur_number INTEGER,
            groupe_instructeur_label TEXT, usager_email TEXT,
            demandeur_type TEXT, siret TEXT, siren TEXT, raison_sociale TEXT, forme_juridique TEXT,
            forme_juridique_code TEXT, naf TEXT, address_label TEXT, city_code TEXT, city_name TEXT,
            postal_code TEXT, department_code TEXT, civilite TEXT, nom TEXT, prenom TEXT, demandeur_email TEXT,
            deletion_state TEXT, deleted_at TEXT, deleted_reason TEXT,
            raw TEXT, seen_run INTEGER, synced_at TEXT
        );
        CREATE INDEX dossiers_demarche ON dossiers(demarche_number);
        CREATE INDEX dossiers_siren ON dossiers(siren);
        CREATE TABLE champs (
            dossier_number INTEGER REFERENCES dossiers(number), id TEXT, descriptor_id TEXT, kind TEXT,
            parent_id TEXT, row_id TEXT, position INTEGER, type TEXT, label TEXT, string_value TEXT,
            value_text TEXT, value_number REAL, value_integer INTEGER, value_boolean INTEGER,
            value_date TEXT, value_json TEXT, updated_at TEXT,
            PRIMARY KEY (dossier_number, id)
        );
        CREATE INDEX champs_descriptor ON champs(descriptor_id);
        CREATE TABLE files (
            dossier_number INTEGER REFERENCES dossiers(number), champ_id TEXT, position INTEGER,
            descriptor_id TEXT, filename TEXT, content_type TEXT, byte_size INTEGER, checksum TEXT,
            PRIMARY KEY (dossier_number, champ_id, position)
        );
        CREATE TABLE traitements (
            dossier_number INTEGER REFERENCES dossiers(number), position INTEGER, event TEXT, state TEXT,
            date_traitement TEXT, email_agent_traitant TEXT, motivation TEXT,
            PRIMARY KEY (dossier_number, position)
        );
        CREATE TABLE sync_state (
            demarche_number INTEGER PRIMARY KEY, incremental_since TEXT, deletions_since TEXT,
            full_run INTEGER, full_started_at TEXT, last_success_at TEXT
        );
        CREATE TABLE sync_streams (
            demarche_number INTEGER, name TEXT, updated_since TEXT, state TEXT, cursor TEXT,
            done INTEGER DEFAULT 0, pages INTEGER DEFAULT 0, PRIMARY KEY (demarche_number, name)
        );
        CREATE TABLE sync_runs (
            id INTEGER PRIMARY KEY, demarche_number INTEGER, mode TEXT, started_at TEXT, finished_at TEXT,
            pages INTEGER DEFAULT 0, nouveaux INTEGER DEFAULT 0, modifies INTEGER DEFAULT 0,
            supprimes INTEGER DEFAULT 0, restaures INTEGER DEFAULT 0, inchanges INTEGER DEFAULT 0
        );
        """
    )
    db.executescript(
        """
        CREATE VIEW v_dossiers AS
        SELECT d.number AS numero, m.key AS demarche, m.title AS demarche_titre, d.state AS etat,
               d.archived AS archive, d.date_depot, d.date_derniere_modification, d.groupe_instructeur_label
               AS groupe_instructeur, coalesce(d.raison_sociale, trim(coalesce(d.prenom, '') || ' ' ||
               coalesce(d.nom, ''))) AS porteur, d.siret, d.forme_juridique_code, d.city_code AS code_commune,
               d.city_name AS commune, d.department_code AS departement, d.usager_email,
               d.deletion_state AS suppression, d.deleted_at AS date_suppression
        FROM dossiers d LEFT JOIN demarches m ON m.number = d.demarche_number;

        CREATE VIEW v_champs AS
        SELECT c.dossier_number AS numero, c.kind AS nature, c.label AS libelle, c.string_value AS valeur,
               c.type, c.row_id AS ligne, p.label AS bloc, c.descriptor_id
        FROM champs c LEFT JOIN champs p ON p.dossier_number = c.dossier_number AND p.id = c.parent_id;

        CREATE VIEW v_fichiers AS
        SELECT f.dossier_number AS numero, c.label AS champ, f.filename AS nom, f.content_type AS type,
               f.byte_size AS taille, f.checksum
        FROM files f LEFT JOIN champs c ON c.dossier_number = f.dossier_number AND c.id = f.champ_id;
        """
    )


@migrations()
def m002_checks_and_refdata(db: sqlite_utils.Database) -> None:
    # One statement per execute() so the migration stays inside its transaction.
    for statement in (
        """CREATE TABLE checks (
            number INTEGER PRIMARY KEY REFERENCES dossiers(number), demarche_number INTEGER, session INTEGER,
            status TEXT, priority TEXT, score REAL, ruleset_version TEXT, config_hash TEXT,
            dossier_modified TEXT, dossier_synced TEXT, siren TEXT, siren_count INTEGER, checked_at TEXT
        )""",
        "CREATE INDEX checks_session ON checks(session, status)",
        """CREATE TABLE check_findings (
            dossier_number INTEGER REFERENCES checks(number), position INTEGER,
            rule TEXT, status TEXT, message TEXT, PRIMARY KEY (dossier_number, position)
        )""",
        """CREATE TABLE ref_communes (
            code_insee TEXT PRIMARY KEY, nom TEXT, dep TEXT, siren TEXT, epci_siren TEXT, epci_nom TEXT,
            epci_nature TEXT, pmun_2021 INTEGER, ptot_2021 INTEGER, zrr TEXT, zrr_modalite TEXT, codes_postaux TEXT
        )""",
        "CREATE INDEX ref_communes_siren ON ref_communes(siren)",
        """CREATE TABLE ref_epci (
            epci_siren TEXT PRIMARY KEY, epci_nom TEXT, epci_nature TEXT, mode_financement TEXT,
            pmun_2021 INTEGER, ptot_2021 INTEGER, nb_communes INTEGER, nb_communes_paca INTEGER,
            nb_communes_zrr INTEGER, departements TEXT
        )""",
        """CREATE TABLE ref_collectivites (
            siren TEXT PRIMARY KEY, niveau TEXT, code TEXT, nom TEXT, cj_attendue TEXT
        )""",
        "CREATE TABLE ref_meta (name TEXT PRIMARY KEY, source TEXT, imported_at TEXT, rows INTEGER)",
    ):
        db.execute(statement)


@migrations()
def m004_file_downloads(db: sqlite_utils.Database) -> None:
    # Apart from `files`, which every re-sync of a dossier rewrites: this table says what is on disk.
    for statement in (
        """CREATE TABLE file_downloads (
            dossier_number INTEGER REFERENCES dossiers(number), champ_id TEXT, position INTEGER,
            demarche_number INTEGER, path TEXT, filename TEXT, size INTEGER, checksum TEXT,
            status TEXT, message TEXT, downloaded_at TEXT,
            PRIMARY KEY (dossier_number, champ_id, position)
        )""",
        "CREATE INDEX file_downloads_status ON file_downloads(status)",
        """CREATE VIEW v_pieces AS
        SELECT f.dossier_number AS numero, m.key AS demarche, f.path AS chemin, f.filename AS nom,
               f.size AS taille, f.status AS statut, f.message, f.downloaded_at AS telecharge_le
        FROM file_downloads f LEFT JOIN demarches m ON m.number = f.demarche_number""",
    ):
        db.execute(statement)


@migrations()
def m003_annotations(db: sqlite_utils.Database) -> None:
    # A log, never rewritten: what `itn7 annotate --apply` wrote to DS, when and as which instructeur.
    for statement in (
        """CREATE TABLE annotations_written (
            dossier_number INTEGER REFERENCES dossiers(number), annotation_id TEXT, value TEXT,
            instructeur_id TEXT, written_at TEXT
        )""",
        "CREATE INDEX annotations_written_dossier ON annotations_written(dossier_number, annotation_id, written_at)",
    ):
        db.execute(statement)


def open_db(path: Path | str, *, must_exist: bool = False) -> sqlite_utils.Database:
    """Opens (and creates or upgrades) the database; WAL so readers never block the sync.

    The file is created owner-only before SQLite opens it, and SQLite gives its `-wal` and `-shm`
    the database's modes; an older database with wider modes is tightened with a logged notice.
    """
    path = Path(path)
    if must_exist and not path.exists():
        raise StoreError(f"Base {path} introuvable : lancez d'abord « itn7 sync ».")
    try:
        if str(path) != ":memory:":
            private.private_file(path)
        tightened = private.tighten(side_files(path))
    except PermissionError as exc:
        raise StoreError(f"Base {path} inaccessible : droits insuffisants ({exc.strerror}).") from None
    if tightened:
        log.warning("Base %s : droits resserrés au seul propriétaire (%s).", path,
                    ", ".join(p.name for p in tightened))
    try:
        db = sqlite_utils.Database(path)
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA foreign_keys = ON")
        # With WAL, NORMAL never corrupts and keeps every commit across a process crash or kill -9;
        # only a power cut may lose the last pages, which the next sync fetches again.
        db.execute("PRAGMA synchronous = NORMAL")
        if db.journal_mode != "wal":
            db.enable_wal()
        migrations.apply(db)
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):  # damaged, or not a SQLite file at all
            raise StoreError(f"Base {path} illisible (fichier endommagé ou qui n'est pas une base itn7) : "
                             f"{exc}.") from None
        if code in (sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN):
            raise StoreError(f"Base {path} inaccessible : droits insuffisants sur le fichier ou son dossier "
                             f"({exc}).") from None
        raise  # locked, disk full, or a bug in a migration: not a reason to call the file unreadable
    return db


def store_path(db: sqlite_utils.Database) -> Path:
    """The file of an open database."""
    return Path(next(row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"))


def open_reader(path: Path) -> sqlite_utils.Database:
    """A read-only connection to an existing, migrated database (a worker's, beside the writer's): it
    creates, upgrades and changes nothing."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.execute("PRAGMA busy_timeout = 30000")
    return sqlite_utils.Database(conn)


def side_files(path: Path) -> list[Path]:
    """The database and the files SQLite keeps next to it."""
    return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@migrations()
def m005_unreadable_dossiers(db: sqlite_utils.Database) -> None:
    # Dossiers DS cannot serialise (`invalid_null`): named here until a later sync reads them whole.
    # Each also has a row in `dossiers` (a stub if it was never read), so checks and exports can show it.
    db.execute(
        """CREATE TABLE unreadable_dossiers (
            number INTEGER PRIMARY KEY REFERENCES dossiers(number), demarche_number INTEGER, message TEXT,
            first_seen_at TEXT, last_tried_at TEXT, attempts INTEGER DEFAULT 1
        )"""
    )


@migrations()
def m006_sync_overlap_and_big_values(db: sqlite_utils.Database) -> None:
    # Where the next incremental run starts (server clock, with an overlap for late commits), and a
    # file size too large for SQLite's 64-bit INTEGER, kept as DS sent it.
    db.execute("ALTER TABLE sync_state ADD COLUMN next_since TEXT")
    db.execute("ALTER TABLE files ADD COLUMN byte_size_text TEXT")


@migrations()
def m008_checks_form_hash(db: sqlite_utils.Database) -> None:
    # A fingerprint of how the dossier's démarche form was read (roles → champs per revision): a new
    # revision that changes it re-checks that démarche's dossiers.
    db.execute("ALTER TABLE checks ADD COLUMN form_hash TEXT")


@migrations()
def m009_decisions(db: sqlite_utils.Database) -> None:
    # The committee's decisions, imported from its workbook, and the log of what was sent to DS for them.
    for statement in (
        """CREATE TABLE decisions (
            dossier_number INTEGER PRIMARY KEY REFERENCES dossiers(number), session INTEGER, decision TEXT,
            amount REAL, motivation TEXT, source_file TEXT, imported_at TEXT, exported_modified TEXT,
            ds_state TEXT, ds_motivation TEXT, ds_modified TEXT, applied_at TEXT
        )""",
        "CREATE INDEX decisions_session ON decisions(session)",
        """CREATE TABLE decision_mutations (
            id INTEGER PRIMARY KEY, dossier_number INTEGER REFERENCES dossiers(number), operation TEXT,
            input TEXT, sent_at TEXT, ok INTEGER, errors TEXT, answer TEXT
        )""",
        "CREATE INDEX decision_mutations_dossier ON decision_mutations(dossier_number, sent_at)",
    ):
        db.execute(statement)


@migrations()
def m011_personal_data(db: sqlite_utils.Database) -> None:
    # The démarche's retention in months (DS's dureeConservationDossiers); when a dossier's personal data
    # was erased here (its row stays as a tombstone); attachments still to delete from disk after an
    # erasure's commit; and the dossiers erased on request, which stay erased if a sync brings them back.
    for statement in (
        "ALTER TABLE demarches ADD COLUMN duree_conservation_dossiers INTEGER",
        "ALTER TABLE dossiers ADD COLUMN erased_at TEXT",
        "CREATE TABLE purge_files (path TEXT PRIMARY KEY, dossier_number INTEGER, queued_at TEXT)",
        "CREATE TABLE erasure_requests (number INTEGER PRIMARY KEY, requested_at TEXT)",
    ):
        db.execute(statement)


@migrations()
def m012_stream_ranges(db: sqlite_utils.Database) -> None:
    # A full pull's stream covers dossiers updated from `updated_since` up to `until` (excluded; NULL: no
    # end), so a démarche's first pull can be split into time ranges read side by side.
    db.execute("ALTER TABLE sync_streams ADD COLUMN until TEXT")
