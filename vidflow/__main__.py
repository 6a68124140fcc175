"""``python -m vidflow`` runs the CLI (useful where the console script is not on PATH)."""

from vidflow.cli import main

main()
