package kafka

// broadcastTopic is the topic a broadcast for cqrsID goes to.
func (c *Config) broadcastTopic(cqrsID string) string {
	if c.TopicPerModel {
		return c.Exchange + "." + cqrsID
	}
	return c.Exchange
}

// queueTopic is a replica queue's own topic: one-queue messages (a SYNC
// aimed at the queue, IntoQueue) and its retries.
func (c *Config) queueTopic(queue string) string { return c.Exchange + ".queue." + queue }

// deadTopic is a dead-letter queue's topic.
func (c *Config) deadTopic(dlq string) string { return c.Exchange + ".dead." + dlq }

// group is the consumer group of a replica queue.
func (c *Config) group(queue string) string { return c.Exchange + "." + queue }
