"""The command line, `rollback-drill` (entry point `app.main`): every command, its options and
its handler, each handler loaded only when its command runs.

Runbook sections: Rollback Verification (`verify`, `fingerprint`), Pre-Rollback Assessment
(`assess`), Rollback Automation (`rollback`, `backup`: the runbook's auto-rollback.sh and
docker-manage.sh backup against the stack `up` runs), Regular Rollback Drills (`run`, `history`,
`certify`, `coverage`, `report`) and the reference stack (`up`, `serve`, `down`, `doctor`).
The top layer: it may import every folder, none imports it.
"""
