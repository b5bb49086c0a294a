"""What every part of a drill shares while it runs: THE timeline (every phase, step, check,
alert and mark, once, on one clock), the typed facts parts hand each other, a procedure as
ordered named steps with the context each step gets (`procedure`), and how a procedure fails
(`failure`).

Runbook sections: none by itself - the vocabulary of every procedure, scenario and monitor.
Below failures/ and monitoring/ (scenarios and monitors emit into the timeline and take the
step context), above checks/ (a failed step reports the services' states).
"""
