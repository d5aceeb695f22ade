//! [`NatsLog`]: the shared log on a NATS JetStream stream (in progress).
