// Command cqrsync runs cqrsync's tools: the embedded demo, and (as they
// arrive) the consumer, relay, dump/load, sync, diff and dead-letter tools.
package main

import (
	"os"

	"github.com/cqrsync/cqrsync/cli"
)

func main() {
	os.Exit(cli.Main())
}
