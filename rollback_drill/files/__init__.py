"""The files people write and the tool writes, validated once with errors that name the file, the
field and what was expected: the stack file (`spec`; its sections `servicespec`, `drillspec`,
`programmespec`; its release files `releasespec`), the target file (`targetspec`), what both
share (`specmodel`, `fields`, `userfiles`), configuration backups (`configbackup`) and
performance baselines (`perfbaseline`).

Runbook sections: the environment each section names (stack and target), the configuration
backups of Emergency and Planned rollbacks, the performance baseline of Rollback
Verification.
"""
