"""`registrator serve`: the registry for browsers, resolvers and Prometheus (SPEC §11)."""
