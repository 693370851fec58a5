"""A fake Démarche Numérique (DS) GraphQL API v2 server, with a realistic ITN7 dataset, for tests and demos."""

from .control import Faults, Stats, TokenSpec
from .dataset import Dataset
from .server import FakeDS

__all__ = ["Dataset", "FakeDS", "Faults", "Stats", "TokenSpec"]
