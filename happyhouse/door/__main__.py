"""``python -m happyhouse.door COMMAND``: the door's command line (see cli.py)."""
import sys

from happyhouse.door.cli import main

sys.exit(main())
