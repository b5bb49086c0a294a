"""The live verify suite (`pytest -m verify --target FILE`). Shipped in the package as
`rollback_drill.shipped.verifications` (pyproject's `package-dir`): the plugin collects it when
`--target` is given and no test path was, so the command works from any folder."""
