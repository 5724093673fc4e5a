"""`registrator serve` (SPEC §11): the registry for browsers, resolvers and Prometheus, answered
from one watched in-memory copy. A wing of its own: only the CLI's lazy entry imports it, so
`registrator run` and the other consumers never load its web stack."""
