"""Code shared by tests/ and bench/: the recording mock engine, the provider stand-ins, the
fixtures' program environment and the type tokens. Not part of the Pulumi program."""
