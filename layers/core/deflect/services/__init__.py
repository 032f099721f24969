"""Use cases. Each takes its ports as arguments; none builds an AWS client."""
