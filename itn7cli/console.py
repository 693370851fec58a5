"""The two consoles: data on stdout, chatter (progress, messages) on stderr."""

from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
