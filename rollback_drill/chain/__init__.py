"""The chain as the harness drives it, through web3 (`evm`: the node, web3's exceptions as the
project's), the operator's key (`keys`), transactions sent exactly once as a thin layer on web3
(`transactions`), deploying and pausing the registry (`deploy`), what the registry holds
(`registry`), carrying its state into a redeployed one (`migration`), and the one reader of
compiled contract artifacts (`artifacts`) that verify's light JSON-RPC reads (`jsonrpc`,
checks/chain.py) share with the engine.

Runbook sections: Smart Contract Rollback (Amoy, mainnet).
"""
