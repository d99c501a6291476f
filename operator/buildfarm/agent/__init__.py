"""The worker agent (`buildfarm agent`): registers a Worker, heartbeats a Lease, runs the Builds assigned
to it and reports them. See docs/agent-protocol.md."""
