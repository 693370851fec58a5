"""Writes the open-data fixtures of tests/test_refdata.py in the real files' formats.

Command (from the project root, with the dev extra installed, which brings xlwt):

    .venv/bin/python tests/data/make_refdata_fixtures.py

- `zrr-cog2021.xls`: a genuine Excel 97 (BIFF8) workbook, as ANCT's diffusion-zonages-zrr-cog2021.xls: the
  sheets « Classement ZRR (COG 2021) », « Classement ZRR (COG 2017) », « Documentation », « Métadonnées »;
  3 lines of notes and a blank line above the header, the French labels, then the codes row
  CODGEO, LIBGEO, ZRR_SIMP, ZONAGE_ZRR; codes as text; the real value labels.
- `zrr-cog2021-tronque.xls`: the same, its COG 2021 sheet cut to 2 communes, as in a copy found in the wild.
- `epcicom2021.xlsx`: DGCL's layout (one sheet, header on the first row: dept, siren, raison_sociale,
  nature_juridique, mode_financ, nb_membres, total_pop_tot, total_pop_mun, dep_com, insee, siren_membre,
  nom_membre, ptot_2021, pmun_2021; SIREN stored as numbers, codes as text), as epcicom2020.xlsx shows it.

The figures are real (PACA communes and EPCI, populations 2021, ZRR: ../shared/data, Licence Ouverte 2.0),
for six EPCI, one per département, one of them reaching into the Drôme. Montfroc (26200) is that Drôme
member: its populations are the EPCI's totals less its PACA members; its SIREN follows the usual pattern
of commune SIRENs and was not checked in SIRENE. Run again, the script gives the same .xls files byte for
byte; the .xlsx differs only by the save time openpyxl writes in docProps/core.xml.
"""

from __future__ import annotations

from pathlib import Path

import xlwt  # dev-only: openpyxl cannot write the .xls format
from openpyxl import Workbook

HERE = Path(__file__).parent

EPCI = [  # siren, nom, nature, mode, pmun, ptot, seat département, members (insee, siren, nom, pmun, ptot, zrr)
    ("200000628", "CC Rhône Lez Provence", "CC", "FPU", 23896, 24316, "84", [
        ("84019", "218400190", "Bollène", 13509, 13740, "NC"),
        ("84063", "218400638", "Lamotte-du-Rhône", 396, 397, "NC"),
        ("84064", "218400646", "Lapalud", 3817, 3895, "NC"),
        ("84078", "218400786", "Mondragon", 3754, 3817, "NC"),
        ("84083", "218400836", "Mornas", 2420, 2467, "NC"),
    ]),
    ("200035319", "CA Var Esterel Méditerranée (CAVEM)", "CA", "FPU", 114875, 116680, "83", [
        ("83001", "218300010", "Les Adrets-de-l'Estérel", 2766, 2839, "NC"),
        ("83061", "218300614", "Fréjus", 53786, 54623, "NC"),
        ("83099", "218300994", "Puget-sur-Argens", 8064, 8172, "NC"),
        ("83107", "218301075", "Roquebrune-sur-Argens", 14626, 14815, "NC"),
        ("83118", "218301182", "Saint-Raphaël", 35633, 36231, "NC"),
    ]),
    ("200039915", "CA Cannes Pays de Lérins", "CA", "FPU", 158111, 160008, "06", [
        ("06029", "210600292", "Cannes", 73965, 74784, "NC"),
        ("06030", "210600300", "Le Cannet", 41471, 41824, "NC"),
        ("06079", "210600797", "Mandelieu-la-Napoule", 21836, 22121, "NC"),
        ("06085", "210600854", "Mougins", 19489, 19915, "NC"),
        ("06138", "210601381", "Théoule-sur-Mer", 1350, 1364, "NC"),
    ]),
    ("241300417", "CA d'Arles-Crau-Camargue-Montagnette", "CA", "FPU", 83669, 84954, "13", [
        ("13004", "211300041", "Arles", 51031, 51831, "C"),
        ("13017", "211300173", "Boulbon", 1518, 1536, "C"),
        ("13061", "211300611", "Saint-Pierre-de-Mézoargues", 210, 215, "C"),
        ("13096", "211300967", "Saintes-Maries-de-la-Mer", 2157, 2178, "C"),
        ("13097", "211300975", "Saint-Martin-de-Crau", 13558, 13861, "C"),
        ("13108", "211301080", "Tarascon", 15195, 15333, "C"),
    ]),
    ("240500462", "CC du Pays des Ecrins", "CC", "FPU", 6623, 6840, "05", [
        ("05006", "210500062", "L'Argentière-la-Bessée", 2268, 2355, "C"),
        ("05031", "210500310", "Champcella", 186, 187, "C"),
        ("05058", "210500583", "Freissinières", 213, 218, "C"),
        ("05101", "200064657", "Vallouise-Pelvoux", 1178, 1219, "C"),
        ("05110", "210501102", "Puy-Saint-Vincent", 296, 301, "C"),
        ("05122", "210501227", "La Roche-de-Rame", 813, 840, "C"),
        ("05151", "210501516", "Saint-Martin-de-Queyrières", 1130, 1167, "C"),
        ("05180", "210501805", "Les Vigneaux", 539, 553, "C"),
    ]),
    ("200071033", "CC Jabron-Lure-Vançon-Durance", "CC", "FPU", 5236, 5415, "04", [
        ("04013", "210400131", "Aubignosc", 599, 614, "NC"),
        ("04027", "210400271", "Bevons", 247, 302, "M"),
        ("04051", "210400511", "Châteauneuf-Miravail", 70, 72, "M"),
        ("04053", "210400537", "Châteauneuf-Val-Saint-Donat", 497, 517, "NC"),
        ("04067", "210400677", "Curel", 52, 53, "M"),
        ("04127", "210401279", "Montfort", 326, 329, "NC"),
        ("04139", "210401394", "Noyers-sur-Jabron", 524, 533, "M"),
        ("04140", "210401402", "Les Omergues", 128, 131, "M"),
        ("04145", "210401451", "Peipin", 1455, 1492, "NC"),
        ("04199", "210401998", "Saint-Vincent-sur-Jabron", 184, 188, "M"),
        ("04200", "210402004", "Salignac", 635, 656, "NC"),
        ("04211", "210402111", "Sourribes", 178, 181, "NC"),
        ("04229", "210402293", "Valbelle", 265, 270, "M"),
        ("26200", "212602007", "Montfroc", 76, 77, "M"),
    ]),
]
# Communes of the ZRR table outside these EPCI (the real file starts with the Ain).
OTHERS = [("01001", "L'Abergement-Clémenciat", "NC"), ("01002", "L'Abergement-de-Varey", "NC"),
          ("26135", "Ferrassières", "C"), ("52156", "Curel", "NC")]

ZRR_2021 = {"C": "C - Classée en ZRR", "NC": "NC - Commune non classée",
            "P": "P - Commune partiellement classée en ZRR"}
ZRR_2017 = {"C": "C - Classée en ZRR", "NC": "NC - Non classée", "P": "P - Partiellement classée en ZRR"}
MODALITES = {"M": "M - Sortante en 2017 classée en zone de montagne continuant de bénéficier des effets du "
                  "classement depuis 2017",
             "A": "A - Sortante en 2017 continuant de bénéficier des effets du classement depuis 2018"}
NOTES = {
    "2021": ["Champ : France métropolitaine et DOM", "Géographie : Communes, au 1er janvier 2021",
             "Source : ANCT, arrêté du 16 mars 2017, modifié par le décret du 22 février 2018, "
             "ANCT-Observatoire des territoires pour la conversion en COG 2021"],
    "2017": ["Champ : France entière", "Géographie : Communes, au 1er janvier 2017",
             "Source : ANCT, arrêté du 16 mars 2017, modifié par le décret du 22 février 2018"],
}
LABELS = ["Code Insee", "Libellé de la commune", "Classement en ZRR", "Modalités du zonage en ZRR"]
METADATA = [
    ("Métadonnées", ""), ("", ""), ("IDENTIFICATION DES DONNEES", ""),
    ("identifiant", "Diffusion-zonages-ZRR-cog2021"),
    ("titre", 'Communes bénéficiaires du dispositif "Zones de revitalisation rurale" (ZRR)'),
    ("format", "xls"), ("encodage", "UTF-8"),
    ("description", "Liste des communes bénéficiaires du dispositif ZRR en COG 2021"),
    ("gestionnaire", "ANCT"), ("licence", "Licence Ouverte Version 2.0 – Etalab"),
]


def communes() -> list[tuple[str, str, str]]:
    """(code, nom, modalité) of every commune of the ZRR fixture, in code order as in the real file."""
    members = [(code, nom, zrr) for *_, members in EPCI for code, _, nom, _, _, zrr in members]
    return sorted(members + OTHERS)


def zrr_sheet(book: xlwt.Workbook, cog: str, rows: list[tuple[str, str, str]]) -> None:
    sheet = book.add_sheet(f"Classement ZRR (COG {cog})")
    simple = ZRR_2021 if cog == "2021" else ZRR_2017
    lines: list[list[str]] = [[note] for note in NOTES[cog]]
    lines += [[], LABELS, ["CODGEO", "LIBGEO", "ZRR_SIMP", "ZONAGE_ZRR"]]
    for code, nom, modalite in rows:
        simp = "C" if modalite in MODALITES else modalite
        lines.append([code, nom, simple[simp], MODALITES.get(modalite, simple[simp])])
    for r, line in enumerate(lines):
        for c, value in enumerate(line):
            sheet.write(r, c, value)


def write_zrr(path: Path, cog2021: list[tuple[str, str, str]]) -> None:
    book = xlwt.Workbook(encoding="utf-8")
    zrr_sheet(book, "2021", cog2021)
    zrr_sheet(book, "2017", communes())
    documentation = book.add_sheet("Documentation")
    documentation.write(1, 1, "Définition")
    documentation.write(2, 1, "Les zones de revitalisation rurale (ZRR) visent à aider le développement des "
                              "territoires ruraux principalement à travers des mesures fiscales et sociales.")
    metadata = book.add_sheet("Métadonnées")
    for r, (name, value) in enumerate(METADATA):
        metadata.write(r, 0, name)
        metadata.write(r, 1, value)
    book.save(str(path))


def write_dgcl(path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Epcicom2021"
    sheet.append(["dept", "siren", "raison_sociale", "nature_juridique", "mode_financ", "nb_membres",
                  "total_pop_tot", "total_pop_mun", "dep_com", "insee", "siren_membre", "nom_membre", "ptot_2021",
                  "pmun_2021"])
    for siren, nom, nature, mode, pmun, ptot, dept, members in EPCI:
        for code, siren_membre, nom_membre, m_pmun, m_ptot, _ in members:
            sheet.append([dept, int(siren), nom, nature, mode, len(members), ptot, pmun, code[:2], code,
                          int(siren_membre), nom_membre, m_ptot, m_pmun])
    book.save(path)


if __name__ == "__main__":
    write_zrr(HERE / "zrr-cog2021.xls", communes())
    write_zrr(HERE / "zrr-cog2021-tronque.xls", communes()[:2])
    write_dgcl(HERE / "epcicom2021.xlsx")
