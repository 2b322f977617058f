// Temporary runner while cli is being restructured; removed before hand-off.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/cqrsync/cqrsync/internal/bench"
)

func main() {
	var o bench.Options
	var rates, mix string
	var short, js bool
	flag.StringVar(&o.MasterDB, "master-db", "postgres", "")
	flag.StringVar(&o.ReplicaDB, "replica-db", "postgres", "")
	flag.IntVar(&o.Changes, "changes", 0, "")
	flag.IntVar(&o.Drain, "drain", 0, "")
	flag.StringVar(&rates, "rate", "", "")
	flag.DurationVar(&o.Duration, "duration", 0, "")
	flag.StringVar(&mix, "mix", "60:30:10", "")
	flag.IntVar(&o.Writers, "writers", 0, "")
	flag.IntVar(&o.TxRows, "tx-rows", 0, "")
	flag.IntVar(&o.Workers, "workers", 0, "")
	flag.IntVar(&o.BatchSize, "batch", 0, "")
	flag.IntVar(&o.RowBytes, "row-bytes", 0, "")
	flag.BoolVar(&o.SkipRaw, "skip-raw", false, "")
	flag.DurationVar(&o.RawDuration, "raw-duration", 0, "")
	flag.IntVar(&o.RawMessages, "raw-messages", 0, "")
	flag.StringVar(&o.CPUProfile, "cpuprofile", "", "")
	flag.BoolVar(&short, "short", false, "")
	flag.BoolVar(&js, "json", false, "")
	flag.Parse()
	for _, r := range strings.Split(rates, ",") {
		if r != "" {
			v, _ := strconv.ParseFloat(r, 64)
			o.Rates = append(o.Rates, v)
		}
	}
	if o.Changes == 0 && o.Drain == 0 && len(o.Rates) == 0 && !short {
		o.Changes = 20000
	}
	m, err := bench.ParseMix(mix)
	if err != nil {
		panic(err)
	}
	o.Mix = m
	if short {
		o = bench.ShortOptions(o)
	}
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	rep, err := bench.Run(ctx, o)
	if rep != nil {
		if js {
			rep.WriteJSON(os.Stdout)
		} else {
			rep.WriteTable(os.Stdout)
		}
	}
	fmt.Fprintf(os.Stderr, "total %v\n", time.Since(start).Round(time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
