"""``python -m slmkit``: the command line."""
from slmkit.cli import main

main()
