#!/usr/bin/env python3
"""Write the JSON schema of every file model to rollback_drill/evidence/schemas/ (run after
changing a model in rollback_drill/files/; tests/test_schemas.py fails until you do)."""

from rollback_drill.evidence import schemafiles

for path in schemafiles.write_all():
    print(path)
