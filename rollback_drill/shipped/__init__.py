"""What the package ships beside the engine, each a subpackage found through
`rollback_drill.process.places`: the SafePsy reference stack (`safepsy`: stack file, releases,
application sources, contract builds, nginx template, frontend, docker files), the drills
(`drills`), the verify suite (`verifications`) and the locustfile (`load`).

In the repository they live at the top (fixtures/safepsy/, drills/, verifications/, load/) and
pyproject's `[tool.setuptools] package-dir` maps them here; nothing in the engine imports
them: the CLI and the pytest plugin hand their folders to pytest or to a subprocess.
"""
