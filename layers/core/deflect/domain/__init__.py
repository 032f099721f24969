"""Pure domain: pydantic models and rules. Imports nothing of AWS."""
