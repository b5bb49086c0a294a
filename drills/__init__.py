"""The drills, one module per runbook section (ARCHITECTURE.md's table). Shipped in the package
as `rollback_drill.shipped.drills` (pyproject's `package-dir`), which `rollback-drill run`
collects; a team's own drills folder runs beside them (`rollback-drill run --drills DIR`)."""
