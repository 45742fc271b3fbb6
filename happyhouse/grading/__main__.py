"""``python -m happyhouse.grading COMMAND``: the grading command line (see cli.py)."""
import sys

# Every notebook runs in its own `python -m happyhouse.grading execute`: skip jsonschema's optional IRI
# checker, which nbformat never uses and whose grammar (rfc3987_syntax) takes ~2 s to import.
sys.modules.setdefault("rfc3987_syntax", None)

from happyhouse.grading.cli import main  # noqa: E402

sys.exit(main())
