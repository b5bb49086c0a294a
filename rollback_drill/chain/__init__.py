"""The chain as the harness drives it: JSON-RPC and ABI bits (`evm`), the operator's key
(`keys`), transactions sent exactly once (`transactions`), deploying and pausing the registry
(`deploy`), what the registry holds (`registry`), carrying its state into a redeployed one
(`migration`) and reading compiled contract artifacts (`artifacts`).

Runbook sections: Smart Contract Rollback (Amoy, mainnet).
"""
