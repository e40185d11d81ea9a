"""The fleet twin: the domain, the store, the embedded stack, the producer contract and the `twin` CLI."""
