"""LocalStack Lambda runtime executor forwarding invokes to `cargo lambda watch` (see plugin.py)."""
