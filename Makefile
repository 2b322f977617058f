.DEFAULT_GOAL := help

help: ## Show this help
	@grep -E '^[a-zA-Z/_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

demo: ## Run the embedded demo (SQLite + in-memory broker)
	go run ./cmd/cqrsync demo

test: ## Run every test with the race detector (the README's command)
	go test -race -count=1 ./...

test/short: ## The short lane: go test -short (one convergence seed, no bench runs, no slow tests)
	go test -short -count=1 ./...

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	go vet ./...

fuzz: ## Fuzz the payload decoder for 30 s
	go test -run='^$$' -fuzz=FuzzDecodePayload -fuzztime=30s .

ci: ## What CI runs: services up, lint, demo, tests
	bash .ci/run

.PHONY: help demo test test/short lint fuzz ci
