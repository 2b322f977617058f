package kafka_test

import (
	"fmt"

	"github.com/cqrsync/cqrsync/config/kafka"
)

// A kafka:// URL names the seed brokers and, in its query, the topics'
// prefix, their partition count and whether each model has its own topic.
func ExampleParseURL() {
	cfg, fake, err := kafka.ParseURL("kafka://k1:9092,k2:9092?exchange=sync&partitions=12")
	if err != nil {
		panic(err)
	}
	fmt.Println(cfg.Brokers, cfg.Exchange, cfg.Partitions, fake)
	// Output: [k1:9092 k2:9092] sync 12 false
}
