"""Processes and time, below everything: child processes that cannot outlive the run (`proc`),
what /proc says (`procfs`), which processes and folders a run owns (`ownership`), time limits
(`cutoff`) and waits (`wait`), secrets that cannot leak (`secrets`), where the external tools
are (`tools`) and imports from threads one at a time (`lazy`).

Runbook sections: none by itself; every section's commands run through it.
"""
