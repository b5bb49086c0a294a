"""The drill programme: which drills are due when (cadences as marker expressions), the trend
and calendar read from the drill records, and the certificate a release manager signs for one
rollback.

Runbook sections: Regular Rollback Drills (monthly, quarterly, annual cadences). Above the
plugin: a cadence is an expression over the plugin's drill markers.
"""
