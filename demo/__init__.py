"""Demo smart-home appliance API used as an upstream for the gateway."""
