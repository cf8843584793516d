"""MQTT reporting to the fleet: state, metrics, the outbox drain, config and commands (to come with the fleet issue)."""
