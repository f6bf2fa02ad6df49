"""``python -m controlplane.embedded``: what ``make run`` runs once the virtual environment is installed."""

from controlplane.embedded.supervisor import main

raise SystemExit(main())
