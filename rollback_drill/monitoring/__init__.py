"""What users see and what it means: the user load (`load`, locust), the prober (`monitor`),
synthetic checks (`synthetic`), the alert rules (`alertrules`) and their engine (`alerts`),
integrity watching (`datawatch`), the assessment (`assess`) with a deciding latency rise
re-sampled (`resample`), and the decision matrix (`decision`).

Runbook sections: Monitoring During Rollback, Pre-Rollback Assessment, Rollback Decision
Matrix.
"""
