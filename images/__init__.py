"""Signed update bundles, A/B slots and health-checked rollback (to come with the images issue)."""
