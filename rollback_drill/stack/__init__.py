"""Backends that bring a stack up and act on it, behind one protocol (`stack.base.Stack`).

The package itself imports nothing: the command line reads its backend choices from
`stack.select` without paying for the backends (TLS, docker) on every command.
"""
