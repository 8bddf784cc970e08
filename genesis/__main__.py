"""`python -m genesis` runs the command-line application."""
from genesis.cli import main

main()
