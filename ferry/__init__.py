"""Ferry: the composition root (CLI, deploy-file schema, demo)."""
