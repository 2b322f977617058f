// Command cqrsync runs cqrsync's tools — consume, relay, bulk dump and load,
// sync, the diff and repair pipelines, dead letters, the outbox status and
// the demo — for the models declared in a configuration file (--config,
// default cqrsync.yaml; see docs/cli.md and cqrsync.example.yaml).
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/config"
	_ "github.com/cqrsync/cqrsync/config/kafka"
	_ "github.com/cqrsync/cqrsync/config/mysql"
	_ "github.com/cqrsync/cqrsync/config/nats"
	_ "github.com/cqrsync/cqrsync/config/postgres"
	_ "github.com/cqrsync/cqrsync/config/sqlite"
)

func main() {
	os.Exit(cli.Main(options()))
}

// options returns the command tree's options: a --config flag and a setup
// that builds the App from that file and the environment (package config),
// and the commands only this binary has (demo, bench).
func options() *cli.Options {
	opts := config.CLI(nil)
	opts.Commands = func() []*cobra.Command { return []*cobra.Command{newDemoCommand(), newBenchCommand()} }
	return opts
}
