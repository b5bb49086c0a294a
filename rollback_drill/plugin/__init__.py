"""The pytest plugin (entry point pytest11 -> `core`): the hooks and guards that keep a verify
run read-only and a drill off anything it did not start (`core`), the options and markers
(`options`), the drills' fixtures (`fixtures`); the verify suite's half (`verify`, with
`verification`, the verify run's edges it shares with `rollback-drill verify`); the run's
drill record (`run_record`); docker-compose stacks (`compose`).

Runbook sections: Rollback Verification (`pytest -m verify --target FILE`) and every drill
(the fixtures that give each one its stack).
"""
