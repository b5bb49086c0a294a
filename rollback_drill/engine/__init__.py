"""One drill, start to verdict: a drill as data and what running it found (`outcome`), the run
itself (`drill`), whether users are served well again (`recovery`), and telling people
(`notify` over `channels`).

Runbook sections: every drill's life - steady state, change, detection, the decision, the
procedure, verification - plus the Communication Plan and Emergency Contacts (notify steps in
every drill).
"""
