"""Operations of agent-lattice: contracts, agent transitions, jobs, run loop, LLM adapters, HTTP, CLI."""
