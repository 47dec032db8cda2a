"""The wire format: envelope, typed values, signing and encryption. Pure, no I/O."""
