"""Neural-network building blocks and the networks built from a space and an architecture."""
