"""Root conftest: stays thin. The harness is the `rollback_drill` pytest plugin (entry point
pytest11); nothing here but what is specific to this repository's own test run."""
