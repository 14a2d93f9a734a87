"""orderstream: composition root, settings, CLI and the local stack."""
