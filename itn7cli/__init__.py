"""itn7 — instruction des dossiers ITN7 Axe 3 (PACA) depuis Démarche Numérique."""

__version__ = "0.1.0"
