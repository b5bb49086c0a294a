"""`rollback-drill up`: a reference stack that outlives the command, owned by one supervisor
process (`supervisor`); what it shares with the commands that talk to it - state.json and the
control socket's messages - is in `state`.

Runbook sections: Rollback Automation (auto-rollback.sh and docker-manage.sh backup run
against the stack `up` keeps).
"""
