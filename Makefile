# The two commands of the README, and a few conveniences.
.PHONY: demo test up down unit lint
demo:          ## run one strategy end to end on the local stack and print its lineage
	localstack/demo.sh
test:          ## every check CI runs: fmt, clippy, unit tests, ASL + CDK checks, integration tests on the local stack
	tests/run.sh
up:
	localstack/up.sh
down:
	localstack/down.sh
unit:
	cargo test --workspace --exclude tradeflow-integration-tests
lint:
	cargo fmt --all --check && cargo clippy --workspace --all-targets -- -D warnings
