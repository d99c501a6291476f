"""The artifact service (sources, artifacts and logs of builds) and its client."""
