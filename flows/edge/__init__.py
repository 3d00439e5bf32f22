"""The edge: the CLI, the served deployments and their forms, ``pgtender up``; terminal rendering
lives here. The edge may import jobs and core; nothing imports the edge."""
