"""`python -m itn7cli` runs the command line."""

from .cli import main

main()
