// Command cqrsync runs cqrsync's tools — consume, relay, bulk dump and load,
// sync, the diff and repair pipelines, dead letters, the outbox status and
// the demo — for the models declared in a configuration file (--config,
// default cqrsync.yaml; see docs/cli.md and cqrsync.example.yaml).
package main

import (
	"os"

	"github.com/cqrsync/cqrsync/cli"
)

func main() {
	os.Exit(cli.Main(options()))
}
