"""JSON Schemas shipped with netplex (package data): the meta-plugin config's, which
`netplex validate` and meta/config.py's `schema_errors` use. No code lives here."""
