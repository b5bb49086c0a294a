"""``python -m rollback_drill.images``: what ``scripts/build-images.sh`` runs."""

from rollback_drill.images.build import main

raise SystemExit(main())
