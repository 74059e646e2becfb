"""``python -m pytest_peft_edges`` runs the ``peft-edges`` command."""

from .cli import main

raise SystemExit(main())
