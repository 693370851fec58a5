"""Roles → champs: descriptor ids win over labels, overrides from itn7.toml, unmapped roles named."""

from __future__ import annotations

from pathlib import Path

import pytest

from itn7cli import check, store
from itn7cli.config import Settings
from itn7cli.errors import ConfigError
from itn7cli.rules import Dossier, mappings_from_settings

from .factory import cid, dossier, find
from .test_check import demarche


def test_a_champ_renamed_on_the_server_is_still_read_through_its_descriptor_id() -> None:
    raw = dossier()
    find(raw, "Montant de la subvention sollicitée (€)")["label"] = "Aide demandée à l'État (€)"
    view = Dossier(raw, "general", mappings_from_settings({})["general"])
    assert view.amount("subvention")[1] == 16000.0


def test_a_descriptor_id_wins_over_a_label_naming_another_champ() -> None:
    raw = dossier()
    # The label of the subvention now sits on another champ: the descriptor id must still win.
    find(raw, "Coût total du projet HT (€)")["label"] = "Montant de la subvention sollicitée (€)"
    view = Dossier(raw, "general", mappings_from_settings({})["general"])
    assert view.amount("subvention")[1] == 16000.0


def test_a_role_is_found_by_its_label_when_the_form_has_other_ids() -> None:
    raw = dossier()
    find(raw, "Coût total du projet HT (€)")["champDescriptorId"] = "Q2hhbXAtOTk5OQ=="
    view = Dossier(raw, "general", mappings_from_settings({})["general"])
    assert view.amount("cout_total")[1] == 20000.0


def test_a_configured_label_overrides_the_default() -> None:
    raw = dossier()
    find(raw, "Coût total du projet HT (€)").update(label="Budget total", champDescriptorId="Q2hhbXAtOTk5OQ==")
    mapping = mappings_from_settings({"general": {"cout_total": "Budget total"}})["general"]
    assert Dossier(raw, "general", mapping).amount("cout_total")[1] == 20000.0


def test_a_configured_descriptor_id_overrides_the_default() -> None:
    mapping = mappings_from_settings({"labo": {"date_fin": cid(1025)}})["labo"]
    assert Dossier(dossier(), "labo", mapping).date("date_fin")[1].isoformat() == "2022-06-30"  # type: ignore[union-attr]


def test_an_unknown_role_in_the_configuration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="rôle inconnu « montant »"):
        mappings_from_settings({"general": {"montant": "Montant"}})


def test_the_champs_listing_gives_roles_and_names_the_unmapped_ones(tmp_path: Path) -> None:
    db = store.open_db(tmp_path / "itn7.db")
    form = demarche(100, "general")
    descriptors = form["revisions"][0]["champDescriptors"]
    form["revisions"][0]["champDescriptors"] = [d for d in descriptors if d["label"] != "Thématique"]
    store.save_demarche(db, "general", form)
    [revision] = check.describe_champs(db, Settings())
    roles = {d["label"]: d["roles"] for d in revision["descriptors"]}
    assert (roles["Coût total du projet HT (€)"], revision["unmapped"]) == (
        ["cout_total"],
        ["partenaires", "partenaire_nom", "partenaire_siret", "thematique", "depense_nature", "depense_description",
         "depense_montant", "piece_deliberation", "avis", "montant_propose", "controle_auto"])
