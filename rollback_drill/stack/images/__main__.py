"""``python -m rollback_drill.stack.images``: what ``scripts/build-images.sh`` runs."""

from rollback_drill.stack.images.build import main

raise SystemExit(main())
