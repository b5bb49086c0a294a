"""What a drill leaves behind, read from its timeline and outcome: the drill record (`record`,
versioned JSON schemas in `schemas/`), the Allure report and its HTML, the chart, the data
drills' evidence rows, the machine and tool versions, the incident document, runbook coverage
and the artifact folder that is never left half-written.

Runbook sections: Post-Rollback Tasks (the incident document), Documentation Updates (which
runbook commands the drills perform, and drift), and the evidence behind every section.
"""
