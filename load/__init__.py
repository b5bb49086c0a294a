"""The locustfile, shipped as `rollback_drill.shipped.load` (pyproject's `package-dir`). Never
imported: locust patches the whole process with gevent, so it runs as a subprocess."""
