"""``python -I -m core.keyholder``: start the keyholder process."""

from core.keyholder.server import main

raise SystemExit(main())
