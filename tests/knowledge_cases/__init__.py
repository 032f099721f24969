"""Knowledge test material: the demo help center's query cases and small deterministic fakes."""
