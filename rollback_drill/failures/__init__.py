"""What goes wrong in a drill, as a deploy pipeline, an operator or the world does it: releases
going out (`scenarios`), operator edits of the live configuration (`operatoredits`, the files
in `operatorfiles`), data scenarios and what users write meanwhile (`datascenarios`,
`userwrites`), a contract release (`contract_release`), faults during a rollback step
(`stepfaults`) and the flaky RPC (`rpcproxy`).

Runbook sections: the reason each procedure runs - Emergency, Planned, Database, Smart
Contract, Service-Specific, Configuration and Staging rollbacks.
"""
