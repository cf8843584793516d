"""ACD queues, agents and their states, routing strategies, statistics (to come with the contact-center issue)."""
